package servicebus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/seed06bc8277/herald/providers"
)

// An emulator in another process cannot create entities over AMQP, and
// Microsoft's has no administration API at all. herald's emulator, when run
// by `herald emulate servicebus`, also serves its Admin over plain HTTP on
// loopback; a provider opened with ?admin=http://127.0.0.1:PORT then
// provisions through it, as on Azure. The protocol is herald's own: three
// JSON POSTs that mirror the Admin interface.

// adminRequest is the body of every admin call.
type adminRequest struct {
	Topic string            `json:"topic"`
	Name  string            `json:"name,omitempty"`
	Spec  *SubscriptionSpec `json:"spec,omitempty"`
}

// AdminHandler serves a over HTTP for NewHTTPAdmin. Serve it on a loopback
// address only: it creates entities for anyone who asks.
func AdminHandler(a Admin) http.Handler {
	mux := http.NewServeMux()
	handle := func(path string, do func(context.Context, adminRequest) (any, error)) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			var req adminRequest
			if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
				http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
				return
			}
			out, err := do(r.Context(), req)
			switch {
			case errors.Is(err, providers.ErrNotFound):
				http.Error(w, err.Error(), http.StatusNotFound)
			case errors.Is(err, providers.ErrInvalid):
				http.Error(w, err.Error(), http.StatusBadRequest)
			case err != nil:
				http.Error(w, err.Error(), http.StatusInternalServerError)
			default:
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(out)
			}
		})
	}
	handle("/ensure-topic", func(ctx context.Context, r adminRequest) (any, error) {
		return struct{}{}, a.EnsureTopic(ctx, r.Topic)
	})
	handle("/ensure-subscription", func(ctx context.Context, r adminRequest) (any, error) {
		if r.Spec == nil {
			return nil, fmt.Errorf("%w: no spec", providers.ErrInvalid)
		}
		return struct{}{}, a.EnsureSubscription(ctx, r.Topic, r.Name, *r.Spec)
	})
	handle("/dead-letter-count", func(ctx context.Context, r adminRequest) (any, error) {
		n, err := a.DeadLetterCount(ctx, r.Topic, r.Name)
		return map[string]int{"count": n}, err
	})
	return mux
}

// httpAdmin calls an AdminHandler.
type httpAdmin struct {
	base   string
	client *http.Client
}

// NewHTTPAdmin returns an Admin that calls the AdminHandler served at base
// ("http://127.0.0.1:PORT"). base must be a loopback http URL: the
// protocol has no authentication and is meant for local emulators.
func NewHTTPAdmin(base string) (Admin, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" || !isLoopback(u.Host) {
		return nil, fmt.Errorf("%w: servicebus: admin URL must be http://LOOPBACK:PORT", providers.ErrInvalid)
	}
	return &httpAdmin{base: u.Scheme + "://" + u.Host, client: &http.Client{Timeout: 30 * time.Second}}, nil
}

func (h *httpAdmin) call(ctx context.Context, path string, req adminRequest, out any) error {
	body, _ := json.Marshal(req) // strings and a struct of plain fields
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	r.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(r)
	if err != nil {
		return fmt.Errorf("%w: servicebus: admin at %s: %v", providers.ErrUnavailable, h.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		sentinel := providers.ErrUnavailable
		switch resp.StatusCode {
		case http.StatusNotFound:
			sentinel = providers.ErrNotFound
		case http.StatusBadRequest:
			sentinel = providers.ErrInvalid
		}
		return fmt.Errorf("%w: servicebus: admin %s: %s", sentinel, path, bytes.TrimSpace(msg))
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

func (h *httpAdmin) EnsureTopic(ctx context.Context, topic string) error {
	return h.call(ctx, "/ensure-topic", adminRequest{Topic: topic}, nil)
}

func (h *httpAdmin) EnsureSubscription(ctx context.Context, topic, name string, spec SubscriptionSpec) error {
	return h.call(ctx, "/ensure-subscription", adminRequest{Topic: topic, Name: name, Spec: &spec}, nil)
}

func (h *httpAdmin) DeadLetterCount(ctx context.Context, topic, name string) (int, error) {
	var out struct{ Count int }
	err := h.call(ctx, "/dead-letter-count", adminRequest{Topic: topic, Name: name}, &out)
	return out.Count, err
}
