package containers

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/seed06bc8277/herald/providers"
)

// noDockerBound is how long DockerAvailable and each Start may take on a
// machine without a Docker engine: the check's 5 s and a margin.
const noDockerBound = 10 * time.Second

// starters are the Start functions, reporting only whether they returned
// a value and their error.
var starters = map[string]func(context.Context) (bool, error){
	"StartLocalStack": func(ctx context.Context) (bool, error) {
		l, err := StartLocalStack(ctx)
		if l != nil {
			_ = l.Close()
		}
		return l != nil, err
	},
	"StartPubSubEmulator": func(ctx context.Context) (bool, error) {
		e, err := StartPubSubEmulator(ctx)
		if e != nil {
			_ = e.Close()
		}
		return e != nil, err
	},
	"StartServiceBusEmulator": func(ctx context.Context) (bool, error) {
		s, err := StartServiceBusEmulator(ctx, nil)
		if s != nil {
			_ = s.Close()
		}
		return s != nil, err
	},
}

// TestWithoutDockerEverythingFailsFast runs everywhere (CI has no Docker):
// with no engine, DockerAvailable and every Start return an error
// wrapping ErrUnavailable within 10 s, without panicking, and leave no
// goroutine behind.
func TestWithoutDockerEverythingFailsFast(t *testing.T) {
	ctx := context.Background()
	begin := time.Now()
	err := DockerAvailable(ctx)
	took := time.Since(begin)
	if err == nil {
		t.Skip("a Docker engine answers: this test is about machines without one")
	}
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	t.Logf("DockerAvailable took %v: %v", took, err)
	if !errors.Is(err, providers.ErrUnavailable) {
		t.Errorf("DockerAvailable = %v, want an error wrapping ErrUnavailable", err)
	}
	if took > noDockerBound {
		t.Errorf("DockerAvailable took %v, want at most %v", took, noDockerBound)
	}

	for name, start := range starters {
		t.Run(name, func(t *testing.T) {
			begin := time.Now()
			got, err := start(ctx)
			took := time.Since(begin)
			t.Logf("%s took %v: %v", name, took, err)
			if got || !errors.Is(err, providers.ErrUnavailable) {
				t.Errorf("%s = (value: %v, %v), want no value and an error wrapping "+
					"ErrUnavailable", name, got, err)
			}
			if took > noDockerBound {
				t.Errorf("%s took %v, want at most %v", name, took, noDockerBound)
			}
		})
	}
}

// TestStartServiceBusEmulatorRefusesBadConfig: a Config.json that is not
// JSON is refused before anything is started, Docker or not.
func TestStartServiceBusEmulatorRefusesBadConfig(t *testing.T) {
	s, err := StartServiceBusEmulator(context.Background(), []byte(`{"UserConfig":`))
	if s != nil || !errors.Is(err, providers.ErrInvalid) {
		t.Fatalf("StartServiceBusEmulator(bad JSON) = (%v, %v), want an error wrapping "+
			"ErrInvalid", s, err)
	}
}

// envSilentChild marks the child process of TestDockerAvailableGivesUp.
const envSilentChild = "HERALD_CONTAINERS_SILENT_ENGINE_CHILD"

// TestDockerAvailableGivesUpOnASilentEngine points DOCKER_HOST at a
// listener that accepts connections and never answers, the worst case
// for a health check, and checks in a child process (testcontainers
// remembers the engine it found for the whole process) that
// DockerAvailable and a Start give up within 10 s each, by their own
// timeout, with an error wrapping ErrUnavailable.
func TestDockerAvailableGivesUpOnASilentEngine(t *testing.T) {
	if os.Getenv(envSilentChild) == "1" {
		silentEngineChild(t)
		return
	}
	if testing.Short() {
		t.Skip("takes about 10 s")
	}

	// A Docker "engine" that reads requests and never answers.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	defer conns.Wait()
	defer lis.Close()
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				_, _ = io.Copy(io.Discard, c) // until the child exits
				_ = c.Close()
			}()
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0],
		"-test.run=^TestDockerAvailableGivesUpOnASilentEngine$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(),
		envSilentChild+"=1",
		"DOCKER_HOST=tcp://"+lis.Addr().String(),
		"HOME="+t.TempDir(), // no ~/.testcontainers.properties of the user's
		"TESTCONTAINERS_RYUK_DISABLED=true",
	)
	out, err := cmd.CombinedOutput()
	t.Logf("child:\n%s", out)
	if err != nil {
		t.Fatalf("child failed: %v", err)
	}
	if !passed(out) {
		t.Fatal("the child did not run its checks")
	}
}

// silentEngineChild is the child's side of the test above.
func silentEngineChild(t *testing.T) {
	ctx := context.Background()
	begin := time.Now()
	err := DockerAvailable(ctx)
	took := time.Since(begin)
	t.Logf("DockerAvailable took %v: %v", took, err)
	if !errors.Is(err, providers.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("DockerAvailable = %v, want an error wrapping ErrUnavailable and "+
			"DeadlineExceeded", err)
	}
	if took > noDockerBound {
		t.Errorf("DockerAvailable took %v, want at most %v", took, noDockerBound)
	}

	begin = time.Now()
	got, err := starters["StartPubSubEmulator"](ctx)
	took = time.Since(begin)
	t.Logf("StartPubSubEmulator took %v: %v", took, err)
	if got || !errors.Is(err, providers.ErrUnavailable) {
		t.Errorf("StartPubSubEmulator = (value: %v, %v), want an error wrapping "+
			"ErrUnavailable", got, err)
	}
	if took > noDockerBound {
		t.Errorf("StartPubSubEmulator took %v, want at most %v", took, noDockerBound)
	}
	t.Log("silent-engine checks ran")
}

// passed reports whether the child's verbose output shows its checks ran
// and passed.
func passed(out []byte) bool {
	ran, ok := false, false
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.Contains(line, "silent-engine checks ran") {
			ran = true
		}
		if strings.HasPrefix(line, "--- PASS: TestDockerAvailableGivesUpOnASilentEngine") {
			ok = true
		}
	}
	return ran && ok
}
