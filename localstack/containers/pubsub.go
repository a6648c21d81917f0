package containers

import (
	"context"
	"fmt"
	"net/url"

	tcpubsub "github.com/testcontainers/testcontainers-go/modules/gcloud/pubsub"

	"github.com/seed06bc8277/herald/localstack"
	"github.com/seed06bc8277/herald/providers"
	"github.com/seed06bc8277/herald/providers/gcppubsub"
)

// The Pub/Sub emulator container's settings.
const (
	// DefaultPubSubImage is the Google Cloud SDK image, with the
	// emulators, that StartPubSubEmulator runs unless HERALD_PUBSUB_IMAGE
	// names another.
	DefaultPubSubImage = "gcr.io/google.com/cloudsdktool/cloud-sdk:emulators"
	// EnvPubSubImage names the variable that replaces DefaultPubSubImage.
	EnvPubSubImage = "HERALD_PUBSUB_IMAGE"
)

// PubSubEmulator is Google's Pub/Sub emulator in a container.
type PubSubEmulator struct {
	// Host is the emulator's "HOST:PORT" on the Docker host, the
	// PUBSUB_EMULATOR_HOST form.
	Host string
	// Project is the project to use: localstack.PubSubProject
	// ("herald-local"). The emulator accepts any project.
	Project string
	// URL opens herald on it: "gcppubsub://herald-local?endpoint=HOST:PORT"
	// (the endpoint query-escaped).
	URL string

	term terminator
}

// StartPubSubEmulator runs Google's Pub/Sub emulator
// (DefaultPubSubImage, or $HERALD_PUBSUB_IMAGE) through testcontainers'
// gcloud module, for project "herald-local", and waits until it listens
// and logs that it started (testcontainers' default deadline, 60 s after
// the container started).
//
// It returns DockerAvailable's error, wrapping providers.ErrUnavailable,
// when no Docker engine answers within 5 s. Any other failure also wraps
// ErrUnavailable and removes what was started.
func StartPubSubEmulator(ctx context.Context) (*PubSubEmulator, error) {
	if err := DockerAvailable(ctx); err != nil {
		return nil, fmt.Errorf("containers: start the Pub/Sub emulator: %w", err)
	}
	ctx, cancel := startContext(ctx)
	defer cancel()

	e := &PubSubEmulator{Project: localstack.PubSubProject}
	img := image(EnvPubSubImage, DefaultPubSubImage)
	err := guard("start the Pub/Sub emulator", func() error {
		ctr, err := tcpubsub.Run(ctx, img, tcpubsub.WithProjectID(e.Project))
		if ctr != nil {
			e.term.add(terminate("Pub/Sub emulator", ctr))
		}
		if err != nil {
			return fmt.Errorf("%w: containers: run the Pub/Sub emulator %s: %w",
				providers.ErrUnavailable, img, err)
		}
		e.Host = ctr.URI() // host:port, no scheme
		return nil
	})
	if err != nil {
		_ = e.Close()
		return nil, err
	}

	q := url.Values{"endpoint": {e.Host}}
	e.URL = gcppubsub.Scheme + "://" + e.Project + "?" + q.Encode()
	return e, nil
}

// Options are the gcppubsub provider options for it: the project and the
// emulator's endpoint (no TLS, no credentials).
func (e *PubSubEmulator) Options() gcppubsub.Options {
	return gcppubsub.Options{Project: e.Project, Endpoint: e.Host}
}

// Close removes the container (waiting at most 1 minute), dropping every
// topic and message. It is safe to call more than once.
func (e *PubSubEmulator) Close() error {
	if e == nil {
		return nil
	}
	return e.term.close()
}
