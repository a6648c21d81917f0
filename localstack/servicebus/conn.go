package servicebus

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"
)

// Protocol headers (OASIS AMQP 1.0, 2.2 and 5.3.1).
var (
	headerAMQP = []byte{'A', 'M', 'Q', 'P', 0, 1, 0, 0}
	headerSASL = []byte{'A', 'M', 'Q', 'P', 3, 1, 0, 0}
)

// Connection limits the emulator advertises and enforces.
const (
	// MaxFrameSize is the largest frame the emulator accepts: 65536 bytes,
	// as Service Bus advertises. Larger messages arrive in several frames.
	MaxFrameSize = 65536
	// handshakeTimeout bounds the protocol header, SASL and open exchange.
	handshakeTimeout = 30 * time.Second
	// idleTimeout is advertised in open; a peer silent for twice as long
	// is disconnected.
	idleTimeout = 60 * time.Second
	// maxSessions is the channel-max the emulator advertises, plus one.
	maxSessions = 1024
)

// conn is one client connection: this goroutine reads and dispatches
// frames; a writer goroutine sends what is queued on out.
type conn struct {
	em       *Emulator
	nc       net.Conn
	br       *bufio.Reader
	out      *writer
	log      *slog.Logger
	peerMax  int // the client's max-frame-size: our frames stay within it
	sessions map[uint16]*session
	replies  map[string]*outLink // reply links by target address ($cbs, $management)
}

// connError ends a connection with an AMQP error sent in close.
type connError struct{ e *amqpError }

func (c connError) Error() string { return c.e.Error() }

func (em *Emulator) serveConn(nc net.Conn) {
	c := &conn{
		em: em, nc: nc, br: bufio.NewReaderSize(nc, 64<<10), log: em.log,
		peerMax: 512, sessions: map[uint16]*session{}, replies: map[string]*outLink{},
	}
	err := c.run()
	c.teardown()
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		c.log.Debug("servicebus emulator: connection ended",
			slog.String("remote", nc.RemoteAddr().String()), slog.String("error", err.Error()))
	}
}

// run performs the handshake, then reads frames until the peer closes or
// a protocol error ends the connection.
func (c *conn) run() error {
	_ = c.nc.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := c.handshake(); err != nil {
		return err
	}
	_ = c.nc.SetWriteDeadline(time.Time{})
	c.out = newWriter(c.nc)
	go c.out.run()

	err := c.readOpen()
	if err == nil {
		err = c.loop()
	}
	var ce connError
	if errors.As(err, &ce) {
		c.out.frame(frameAMQP, 0, perf(codeClose, list{ce.e.value()}), nil)
	}
	return err
}

// handshake exchanges protocol headers and runs SASL ANONYMOUS (or PLAIN,
// accepting any credentials) when the client asks for it.
func (c *conn) handshake() error {
	var h [8]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return err
	}
	if bytes.Equal(h[:], headerSASL) {
		if err := c.sasl(); err != nil {
			return err
		}
		if _, err := io.ReadFull(c.br, h[:]); err != nil {
			return err
		}
	}
	if !bytes.Equal(h[:], headerAMQP) {
		// Unsupported header: answer with ours and close (2.2).
		_, _ = c.nc.Write(headerSASL)
		return fmt.Errorf("servicebus emulator: unsupported protocol header %q", h[:])
	}
	_, err := c.nc.Write(headerAMQP)
	return err
}

func (c *conn) sasl() error {
	if _, err := c.nc.Write(headerSASL); err != nil {
		return err
	}
	mechs := perf(codeSASLMechanisms, list{amqpArray{symbol("ANONYMOUS"), symbol("PLAIN")}})
	if _, err := c.nc.Write(appendFrame(nil, frameSASL, 0, mechs, nil)); err != nil {
		return err
	}
	f, err := c.readFrame()
	if err != nil {
		return err
	}
	if f.typ != frameSASL || f.code != codeSASLInit {
		return fmt.Errorf("servicebus emulator: expected sasl-init, got code 0x%x", f.code)
	}
	outcome := perf(codeSASLOutcome, list{uint8(0)})
	_, err = c.nc.Write(appendFrame(nil, frameSASL, 0, outcome, nil))
	return err
}

// readFrame reads one frame, rejecting sizes outside 8..MaxFrameSize.
func (c *conn) readFrame() (frame, error) {
	var h [8]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return frame{}, err
	}
	size := binary.BigEndian.Uint32(h[:4])
	if size < frameHeaderSize || size > MaxFrameSize {
		return frame{}, connError{newError(condFramingError,
			"frame size %d outside 8..%d", size, MaxFrameSize)}
	}
	rest := make([]byte, size-frameHeaderSize)
	if _, err := io.ReadFull(c.br, rest); err != nil {
		return frame{}, err
	}
	f, err := parseFrame(h, rest)
	if err != nil {
		return f, connError{newError(condDecode, "%v", err)}
	}
	return f, nil
}

func (c *conn) readOpen() error {
	f, err := c.readFrame()
	if err != nil {
		return err
	}
	if f.typ != frameAMQP || f.code != codeOpen {
		return connError{newError(condNotAllowed, "expected open, got code 0x%x", f.code)}
	}
	if mfs, ok := f.fields.u32(2); ok && mfs >= 512 {
		c.peerMax = int(min(mfs, 1<<20))
	} else if !ok {
		c.peerMax = 1 << 20
	}
	beat := 15 * time.Second
	if ms, ok := f.fields.u32(4); ok && ms > 0 {
		beat = min(beat, max(time.Duration(ms)*time.Millisecond/2, 100*time.Millisecond))
	}
	c.out.startHeartbeat(beat)
	c.out.frame(frameAMQP, 0, perf(codeOpen, list{
		"herald-servicebus-emulator", nil, uint32(MaxFrameSize), uint16(maxSessions - 1),
		uint32(idleTimeout / time.Millisecond),
	}), nil)
	return nil
}

// loop reads frames and dispatches them until close or error.
func (c *conn) loop() error {
	for {
		_ = c.nc.SetReadDeadline(time.Now().Add(2 * idleTimeout))
		f, err := c.readFrame()
		if err != nil {
			return err
		}
		if f.code == 0 {
			continue // heartbeat
		}
		if f.typ != frameAMQP {
			return connError{newError(condFramingError, "frame type %d after open", f.typ)}
		}
		switch f.code {
		case codeClose:
			c.out.frame(frameAMQP, 0, perf(codeClose, nil), nil)
			return io.EOF
		case codeBegin:
			if err := c.begin(f); err != nil {
				return err
			}
			continue
		case codeOpen:
			return connError{newError(condNotAllowed, "second open")}
		}
		if f.code < codeOpen || f.code > codeClose {
			return connError{newError(condNotImplemented, "unknown performative 0x%x", f.code)}
		}
		s := c.sessions[f.channel]
		if s == nil && f.code == codeEnd {
			// go-amqp ends sessions it abandoned before their begin went
			// out (a cancelled NewSession): nothing to end, nothing to say.
			continue
		}
		if s == nil {
			return connError{newError(condNotAllowed, "channel %d has no session (performative 0x%x)",
				f.channel, f.code)}
		}
		if err := s.handle(f); err != nil {
			var se sessionError
			if errors.As(err, &se) {
				s.end(se.e)
				continue
			}
			return err
		}
	}
}

func (c *conn) begin(f frame) error {
	if _, busy := c.sessions[f.channel]; busy || f.channel >= maxSessions {
		return connError{newError(condNotAllowed, "channel %d in use or above channel-max", f.channel)}
	}
	if _, ok := f.fields.u32(0); ok {
		return connError{newError(condNotAllowed, "begin with remote-channel from a client")}
	}
	next, _ := f.fields.u32(1)
	s := newSession(c, f.channel, next)
	c.sessions[f.channel] = s
	c.out.frame(frameAMQP, s.ch, perf(codeBegin, list{
		f.channel, uint32(0), uint32(sessionWindow), uint32(0xffffffff), uint32(0xfffffffe),
	}), nil)
	return nil
}

// teardown detaches every link and stops the writer after it flushed.
func (c *conn) teardown() {
	for _, s := range c.sessions {
		s.cleanup()
	}
	if c.out != nil {
		c.out.close()
	}
	_ = c.nc.Close()
}
