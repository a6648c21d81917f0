package servicebus

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/seed06bc8277/herald/providers"
)

// DefaultMaxMessageSize is the largest message the emulator accepts,
// 1 MiB (the Premium tier's default), so that 256 KiB bodies fit with
// room for their properties. Config.MaxMessageSize changes it.
const DefaultMaxMessageSize = 1 << 20

// sweepEvery is how often lock expiry, scheduled messages and time to
// live are checked; deadlines are honoured within this much.
const sweepEvery = 50 * time.Millisecond

// Emulator is an in-process Service Bus namespace served over AMQP 1.0.
// All methods are safe for concurrent use.
type Emulator struct {
	broker         *broker
	log            *slog.Logger
	maxMessageSize int

	mu      sync.Mutex
	ln      net.Listener
	conns   map[net.Conn]struct{}
	closed  bool
	wg      sync.WaitGroup
	stop    chan struct{}
	sweeper sync.Once
}

// New builds an emulator holding the entities of cfg. It starts no
// goroutine until Listen or Serve.
func New(cfg Config) (*Emulator, error) {
	em := &Emulator{
		broker: newBroker(), log: cfg.Logger, maxMessageSize: cfg.MaxMessageSize,
		conns: map[net.Conn]struct{}{}, stop: make(chan struct{}),
	}
	if em.log == nil {
		em.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if em.maxMessageSize <= 0 {
		em.maxMessageSize = DefaultMaxMessageSize
	}
	if err := em.apply(cfg.UserConfig); err != nil {
		return nil, err
	}
	return em, nil
}

// Listen starts serving on addr (use "127.0.0.1:0" for a free port) and
// returns once the socket is bound; Addr tells the port.
func (em *Emulator) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("servicebus emulator: listen on %s: %w: %w",
			addr, providers.ErrUnavailable, err)
	}
	if err := em.setListener(ln); err != nil {
		_ = ln.Close()
		return err
	}
	go func() {
		defer em.wg.Done()
		em.acceptLoop(ln)
	}()
	return nil
}

// Serve accepts connections on ln until Close, then returns nil.
func (em *Emulator) Serve(ln net.Listener) error {
	if err := em.setListener(ln); err != nil {
		return err
	}
	defer em.wg.Done()
	em.acceptLoop(ln)
	return nil
}

// setListener records ln and counts its accept loop in wg (the caller
// runs the loop and calls wg.Done), under mu so that Close waits for it.
func (em *Emulator) setListener(ln net.Listener) error {
	em.mu.Lock()
	defer em.mu.Unlock()
	if em.closed {
		return fmt.Errorf("servicebus emulator: serve: %w", providers.ErrClosed)
	}
	if em.ln != nil {
		return fmt.Errorf("servicebus emulator: serve: already serving on %s: %w",
			em.ln.Addr(), providers.ErrInvalid)
	}
	em.ln = ln
	em.wg.Add(1)
	em.sweeper.Do(func() {
		em.wg.Add(1)
		go em.sweepLoop()
	})
	return nil
}

func (em *Emulator) acceptLoop(ln net.Listener) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		em.mu.Lock()
		if em.closed {
			em.mu.Unlock()
			_ = nc.Close()
			return
		}
		em.conns[nc] = struct{}{}
		em.wg.Add(1)
		em.mu.Unlock()
		go func() {
			defer em.wg.Done()
			em.serveConn(nc)
			em.mu.Lock()
			delete(em.conns, nc)
			em.mu.Unlock()
		}()
	}
}

func (em *Emulator) sweepLoop() {
	defer em.wg.Done()
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-em.stop:
			return
		case now := <-t.C:
			em.broker.sweep(now)
		}
	}
}

// Addr returns the host:port served, or "" before Listen or Serve.
func (em *Emulator) Addr() string {
	em.mu.Lock()
	defer em.mu.Unlock()
	if em.ln == nil {
		return ""
	}
	return em.ln.Addr().String()
}

// ConnectionString returns the connection string azservicebus needs,
// with the development-emulator flag (plain TCP, no TLS). The key is the
// placeholder Microsoft's emulator uses; the emulator accepts any token.
func (em *Emulator) ConnectionString() string {
	return "Endpoint=sb://" + em.Addr() +
		";SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=SAS_KEY_VALUE" +
		";UseDevelopmentEmulator=true"
}

// Close stops accepting, closes every connection and waits for all
// goroutines to end. Messages stay in memory for the Go API. Close is
// idempotent.
func (em *Emulator) Close() error {
	em.mu.Lock()
	if em.closed {
		em.mu.Unlock()
		return nil
	}
	em.closed = true
	close(em.stop)
	if em.ln != nil {
		_ = em.ln.Close()
	}
	for nc := range em.conns {
		_ = nc.Close()
	}
	em.mu.Unlock()
	em.wg.Wait()
	return nil
}
