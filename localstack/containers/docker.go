package containers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/testcontainers/testcontainers-go"

	"github.com/seed06bc8277/herald/providers"
)

// EnvDocker names the variable that lets this package's tests start
// containers: HERALD_DOCKER=1.
const EnvDocker = "HERALD_DOCKER"

// The time limits of this package.
const (
	// DockerCheckTimeout bounds DockerAvailable.
	DockerCheckTimeout = 5 * time.Second
	// StartTimeout bounds a Start whose context has no deadline: image
	// pulls on a fresh machine plus the emulators' own start.
	StartTimeout = 10 * time.Minute
	// closeTimeout bounds the removal of containers and networks by Close.
	closeTimeout = time.Minute
)

// DockerAvailable returns nil when a Docker engine answers testcontainers'
// health check (the engine's Info call), and otherwise an error wrapping
// providers.ErrUnavailable that says why. It returns within
// DockerCheckTimeout (5 s) or when ctx ends, whichever comes first, even
// when the engine accepts connections and never answers; a panic inside
// testcontainers becomes an error.
//
// testcontainers looks for the engine once per process and remembers the
// outcome, so an engine started after the first call is not seen by this
// process. When the check times out, the goroutine doing it may linger
// until the engine's connection fails; it holds no lock of the caller.
func DockerAvailable(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, DockerCheckTimeout)
	defer cancel()

	done := make(chan error, 1) // the checker never blocks on a gone caller
	go func() { done <- dockerHealth(ctx) }()

	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%w: containers: no Docker engine answers: %v",
				providers.ErrUnavailable, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: containers: no Docker engine answered within %v: %w",
			providers.ErrUnavailable, DockerCheckTimeout, ctx.Err())
	}
}

// dockerHealth asks testcontainers' default provider (Docker or Podman,
// as DOCKER_HOST and ~/.testcontainers.properties say) for its health.
func dockerHealth(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("testcontainers panicked: %v", r)
		}
	}()
	p, err := testcontainers.ProviderDefault.GetProvider()
	if err != nil {
		return err
	}
	defer p.Close()
	return p.Health(ctx)
}

// startContext gives ctx the StartTimeout unless it has a deadline.
func startContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, StartTimeout)
}

// guard runs start, turning a panic inside testcontainers (it panics
// when it finds no engine in some calls) into an error.
func guard(what string, start func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: containers: %s: testcontainers panicked: %v",
				providers.ErrUnavailable, what, r)
		}
	}()
	return start()
}

// image returns $env, or def when it is unset.
func image(env, def string) string {
	if v := os.Getenv(env); v != "" {
		return v
	}
	return def
}

// terminator removes containers and networks once, in reverse order of
// creation, for the Close methods.
type terminator struct {
	once  sync.Once
	steps []func(context.Context) error
	err   error
}

// add registers a removal to run at close.
func (t *terminator) add(step func(context.Context) error) {
	t.steps = append(t.steps, step)
}

// close runs the removals, last added first, within closeTimeout, and
// returns their errors joined. Later calls return the same error.
func (t *terminator) close() error {
	t.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		var errs []error
		for i := len(t.steps) - 1; i >= 0; i-- {
			if err := t.steps[i](ctx); err != nil {
				errs = append(errs, err)
			}
		}
		t.err = errors.Join(errs...)
	})
	return t.err
}

// terminate removes a container that testcontainers returned, possibly
// with an error (it then returns the half-started container, or nil).
func terminate(what string, c testcontainers.Container) func(context.Context) error {
	return func(ctx context.Context) error {
		if c == nil {
			return nil
		}
		if err := c.Terminate(ctx); err != nil {
			return fmt.Errorf("containers: remove %s container: %w", what, err)
		}
		return nil
	}
}
