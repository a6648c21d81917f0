package localstack

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The AWS stand-in's defaults and variables.
const (
	// EnvAWSEndpoint names the standard variable of an AWS endpoint that
	// someone already started (LocalStack, fauxqs); StartAWS uses it when
	// set instead of starting fauxqs.
	EnvAWSEndpoint = "AWS_ENDPOINT_URL"
	// EnvFauxqsDir overrides where StartAWS looks for the fauxqs npm
	// package (the directory holding package.json and launch.mjs).
	EnvFauxqsDir = "HERALD_FAUXQS_DIR"
	// DefaultAWSRegion is the region StartAWS reports when neither
	// AWS_REGION nor AWS_DEFAULT_REGION is set.
	DefaultAWSRegion = "us-east-1"
	// TestAccessKey is the static access key ID and secret key for the
	// local cloud, which accepts any credentials.
	TestAccessKey = "test"
)

// The time limits of StartAWS.
const (
	// awsStartTimeout bounds the wait for fauxqs to print its port.
	awsStartTimeout = 30 * time.Second
	// npmTimeout bounds "npm ci" on a fresh checkout.
	npmTimeout = 5 * time.Minute
	// awsStopTimeout is how long Close waits for fauxqs to exit after
	// closing its stdin before killing it.
	awsStopTimeout = 5 * time.Second
)

// AWS is a local SNS and SQS endpoint: fauxqs 1.9.2 started by StartAWS,
// or the endpoint named by AWS_ENDPOINT_URL. fauxqs keeps everything in
// memory, accepts any credentials and does not enforce queue policies.
type AWS struct {
	// Endpoint is the base URL of the endpoint, such as
	// "http://127.0.0.1:41234".
	Endpoint string
	// Region is the region to sign requests for.
	Region string
	// URL opens herald on the endpoint:
	// "snssqs://?region=REGION&endpoint=ENDPOINT".
	URL string
	// AccessKeyID and SecretAccessKey are the static test credentials
	// ("test"/"test") that the local cloud accepts.
	AccessKeyID, SecretAccessKey string

	cmd     *exec.Cmd
	stdin   io.WriteCloser
	exited  chan struct{}
	stopped sync.Once
	stopErr error
}

// StartAWS returns a local AWS endpoint. When AWS_ENDPOINT_URL is set it
// checks that the endpoint accepts connections and uses it; otherwise it
// starts fauxqs from localstack/fauxqs on a free loopback port, running
// "npm ci" there first when node_modules is missing. fauxqs exits when Close
// is called or when this process dies (it watches its stdin).
//
// So that herald.Open(a.URL) finds credentials through the AWS default
// chain, StartAWS sets AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY to
// "test" when AWS_ACCESS_KEY_ID is unset.
//
// For LocalStack in Docker, use containers.StartLocalStack (package
// localstack/containers), or start it yourself and set AWS_ENDPOINT_URL.
func StartAWS(ctx context.Context) (*AWS, error) {
	region := os.Getenv("AWS_REGION")
	if region == "" {
		region = os.Getenv("AWS_DEFAULT_REGION")
	}
	if region == "" {
		region = DefaultAWSRegion
	}
	a := &AWS{Region: region, AccessKeyID: TestAccessKey, SecretAccessKey: TestAccessKey}

	if ep := os.Getenv(EnvAWSEndpoint); ep != "" {
		if err := checkListening(ctx, ep); err != nil {
			return nil, fmt.Errorf("localstack: %s=%s: %w", EnvAWSEndpoint, ep, err)
		}
		a.Endpoint = strings.TrimRight(ep, "/")
	} else if err := a.startFauxqs(ctx); err != nil {
		return nil, err
	}

	if os.Getenv("AWS_ACCESS_KEY_ID") == "" {
		os.Setenv("AWS_ACCESS_KEY_ID", TestAccessKey)
		os.Setenv("AWS_SECRET_ACCESS_KEY", TestAccessKey)
	}
	q := url.Values{"region": {a.Region}, "endpoint": {a.Endpoint}}
	a.URL = "snssqs://?" + q.Encode()
	return a, nil
}

// Close stops fauxqs if StartAWS started it and waits for it to exit (at
// most 5 s, then it is killed). It is safe to call more than once.
func (a *AWS) Close() error {
	if a == nil || a.cmd == nil {
		return nil
	}
	a.stopped.Do(func() {
		a.stdin.Close()
		select {
		case <-a.exited:
		case <-time.After(awsStopTimeout):
			a.cmd.Process.Kill()
			<-a.exited
			a.stopErr = errors.New("localstack: fauxqs did not exit within 5s; killed")
		}
	})
	return a.stopErr
}

// Stop is Close.
func (a *AWS) Stop() error { return a.Close() }

// checkListening dials the endpoint's host and port once (at most 2 s).
func checkListening(ctx context.Context, endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return fmt.Errorf("not a URL with a host")
	}
	host := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return fmt.Errorf("nothing listens: %w", err)
	}
	return c.Close()
}

// startFauxqs runs launch.mjs with node and reads the port it prints.
func (a *AWS) startFauxqs(ctx context.Context) error {
	dir, err := fauxqsDir()
	if err != nil {
		return err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return fmt.Errorf("localstack: fauxqs needs Node.js 20 or later on PATH: %w", err)
	}
	if err := npmCI(ctx, dir); err != nil {
		return err
	}

	cmd := exec.Command(node, filepath.Join(dir, "launch.mjs"), "0", a.Region)
	cmd.Dir = dir
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("localstack: fauxqs: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("localstack: fauxqs: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("localstack: start fauxqs: %w", err)
	}
	exited := make(chan struct{})
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "port="); ok {
				port <- p
				break
			}
		}
		io.Copy(io.Discard, stdout) // keep the pipe drained until exit
	}()
	go func() {
		cmd.Wait()
		close(exited)
	}()
	a.cmd, a.stdin, a.exited = cmd, stdin, exited

	timer := time.NewTimer(awsStartTimeout)
	defer timer.Stop()
	select {
	case p := <-port:
		if _, err := strconv.Atoi(p); err != nil {
			a.Close()
			return fmt.Errorf("localstack: fauxqs printed port %q", p)
		}
		a.Endpoint = "http://127.0.0.1:" + p
		return nil
	case <-exited:
		return fmt.Errorf("localstack: fauxqs exited at start: %s", stderr.tail())
	case <-timer.C:
		a.Close()
		return fmt.Errorf("localstack: fauxqs printed no port within %v: %s",
			awsStartTimeout, stderr.tail())
	case <-ctx.Done():
		a.Close()
		return fmt.Errorf("localstack: start fauxqs: %w", ctx.Err())
	}
}

// fauxqsDir finds localstack/fauxqs: $HERALD_FAUXQS_DIR, else beside this
// source file, else under the module root above the working directory.
func fauxqsDir() (string, error) {
	var tried []string
	ok := func(dir string) bool {
		tried = append(tried, dir)
		_, err := os.Stat(filepath.Join(dir, "launch.mjs"))
		return err == nil
	}
	if dir := os.Getenv(EnvFauxqsDir); dir != "" {
		if ok(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("localstack: %s=%s holds no launch.mjs", EnvFauxqsDir, dir)
	}
	if _, file, _, found := runtime.Caller(0); found {
		if dir := filepath.Join(filepath.Dir(file), "fauxqs"); ok(dir) {
			return dir, nil
		}
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				if d := filepath.Join(dir, "localstack", "fauxqs"); ok(d) {
					return d, nil
				}
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	return "", fmt.Errorf("localstack: fauxqs package not found (tried %v); set %s",
		tried, EnvFauxqsDir)
}

// npmCI runs "npm ci" in dir unless node_modules already holds fauxqs.
// Test binaries of several packages may start at once: a lock directory
// lets one of them install while the others wait for it.
func npmCI(ctx context.Context, dir string) error {
	installed := func() bool {
		_, err := os.Stat(filepath.Join(dir, "node_modules", "fauxqs", "package.json"))
		return err == nil
	}
	if installed() {
		return nil
	}
	lock := filepath.Join(dir, ".npm-ci.lock")
	deadline := time.Now().Add(npmTimeout)
	for {
		err := os.Mkdir(lock, 0o755)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("localstack: npm ci lock: %w", err)
		}
		if installed() {
			return nil
		}
		if fi, err := os.Stat(lock); err == nil && time.Since(fi.ModTime()) > npmTimeout {
			os.Remove(lock) // left by a process that died while installing
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("localstack: waited %v for another npm ci in %s", npmTimeout, dir)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	defer os.Remove(lock)
	if installed() {
		return nil
	}

	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("localstack: node_modules missing in %s and npm not on PATH: %w", dir, err)
	}
	ctx, cancel := context.WithTimeout(ctx, npmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("localstack: npm ci in %s: %w: %s", dir, err, lastLines(out, 10))
	}
	return nil
}

// lockedBuffer collects a child's stderr for error messages.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() < 64<<10 {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *lockedBuffer) tail() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return lastLines(b.buf.Bytes(), 10)
}

func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
