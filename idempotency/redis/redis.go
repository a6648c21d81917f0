// Package redis is an idempotency.Store in Redis (go-redis v9), shared by
// consumers on many hosts.
//
// Each key is one Redis string, "<state>|<fingerprint>|<token>|<until>",
// where state is h (held), c (completed) or r (released) and until is the
// lease or retention end in microseconds of the server's clock. The string
// expires with PX at that same instant, so Redis itself drops ended
// claims and completions. Only Lua scripts change it, so every operation
// is atomic, and scripts read the time with TIME: leases and retention
// run on the server's clock, never on a client's.
//
// Tokens are the server's time in microseconds when the claim was taken,
// or the previous token plus one if that is larger, so that they grow for
// a key even after its record expired.
//
// Stricter than the memory store: a claim whose lease ran out is gone,
// so its worker's Complete or Release fails with ErrStaleToken even when
// nobody took over.
//
// An unreachable server fails every operation with an error wrapping
// providers.ErrUnavailable, after the client's own retries (about 1.7 s
// with go-redis's defaults of 3 retries; set Options.MaxRetries to -1 on
// the client to fail at once).
//
// It needs Redis 7.0 or later (SET with both NX and GET).
//
// ClaimBatch is one script call for the whole batch on a single server
// (a Client, a Sentinel failover client). On a ClusterClient or a Ring,
// where the batch's keys live on different nodes, it is a pipeline of
// one script call per key: still one round trip per node, but no longer
// atomic as a whole.
package redis

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/seed06bc8277/herald/idempotency"
	"github.com/seed06bc8277/herald/providers"
)

// DefaultPrefix is the key prefix when Options.Prefix is empty.
const DefaultPrefix = "herald:idem:"

// Options configure a Store.
type Options struct {
	// Prefix is put before every idempotency key to make the Redis key;
	// "herald:idem:" when empty. Give each environment sharing one Redis
	// its own prefix.
	Prefix string
}

// Store is an idempotency.Store in Redis. It is safe for concurrent use.
type Store struct {
	client goredis.UniversalClient
	prefix string
	// perKey: the client spreads keys over several servers, so a batch
	// cannot be one script call.
	perKey bool
}

var _ idempotency.Store = (*Store)(nil)

// New returns a store on client. The store does not own the client: the
// caller closes it.
func New(client goredis.UniversalClient, opts Options) *Store {
	s := &Store{client: client, prefix: opts.Prefix}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	switch client.(type) {
	case *goredis.ClusterClient, *goredis.Ring:
		s.perKey = true
	}
	return s
}

// claimScript claims KEYS[i] with fingerprint ARGV[2i-1] and a lease of
// ARGV[2i] milliseconds, and returns status, token, until (microseconds)
// for each key in turn. Status: 1 acquired, 2 in progress, 3 completed,
// 4 conflict.
var claimScript = goredis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {}
for i = 1, #KEYS do
	local fp, lease = ARGV[2*i-1], tonumber(ARGV[2*i])
	local untl = now + lease * 1000
	local status, tok = 1, now
	-- Most keys are new: one call takes them and says whether they were.
	local v = redis.call('SET', KEYS[i], string.format('h|%s|%d|%d', fp, now, untl),
		'NX', 'PX', lease, 'GET')
	if v then
		local st, vfp, vtok, vuntl = string.match(v, '^(%a)|(%d+)|(%d+)|(%d+)$')
		if not st then
			return redis.error_reply('herald: malformed idempotency record at ' .. KEYS[i])
		end
		if st ~= 'r' and now < tonumber(vuntl) then
			tok = 0
			if vfp ~= fp then
				status, untl = 4, 0
			elseif st == 'c' then
				status, untl = 3, 0
			else
				status, untl = 2, tonumber(vuntl)
			end
		else
			local prev = tonumber(vtok)
			if tok <= prev then tok = prev + 1 end
			redis.call('SET', KEYS[i], string.format('h|%s|%d|%d', fp, tok, untl), 'PX', lease)
		end
	end
	out[#out+1] = status
	out[#out+1] = tok
	out[#out+1] = untl
end
return out
`)

// completeScript completes KEYS[1] held with token ARGV[1] and keeps it
// for ARGV[2] milliseconds; it returns 0 when the token does not hold it.
var completeScript = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local st, fp, tok = string.match(v, '^(%a)|(%d+)|(%d+)|')
if st ~= 'h' or tok ~= ARGV[1] then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local keep = tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('c|%s|%s|%d', fp, tok, now + keep * 1000), 'PX', keep)
return 1
`)

// releaseScript marks KEYS[1], held with token ARGV[1], released; the
// record keeps its token until its lease would have ended, so the next
// claim's token is larger. It returns 0 when the token does not hold it.
var releaseScript = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local st, fp, tok = string.match(v, '^(%a)|(%d+)|(%d+)|')
if st ~= 'h' or tok ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], 'r|' .. fp .. '|' .. tok .. '|0', 'KEEPTTL')
return 1
`)

// millis rounds d up to whole milliseconds, at least 1: the unit of PX.
func millis(d time.Duration) int64 {
	return max(int64((d+time.Millisecond-1)/time.Millisecond), 1)
}

// Claim implements idempotency.Store. The lease is rounded up to whole
// milliseconds.
func (s *Store) Claim(ctx context.Context, key string, fingerprint uint64,
	lease time.Duration) (idempotency.Result, error) {
	if err := idempotency.ValidateKey(key); err != nil {
		return idempotency.Result{}, err
	}
	if lease <= 0 {
		return idempotency.Result{}, fmt.Errorf(
			"idempotency/redis: claim %q: lease must be positive, got %v", key, lease)
	}
	if err := ctx.Err(); err != nil {
		return idempotency.Result{}, s.wrap("claim", key, err)
	}
	vals, err := claimScript.Run(ctx, s.client, []string{s.prefix + key},
		strconv.FormatUint(fingerprint, 10), millis(lease)).Int64Slice()
	if err != nil {
		return idempotency.Result{}, s.wrap("claim", key, err)
	}
	var res [1]idempotency.Result
	if err := decode(vals, res[:]); err != nil {
		return idempotency.Result{}, s.wrap("claim", key, err)
	}
	return res[0], nil
}

// ClaimBatch implements idempotency.Store: one script call on a single
// server, a pipeline of per-key calls on a Cluster or Ring. Leases are
// rounded up to whole milliseconds.
func (s *Store) ClaimBatch(ctx context.Context,
	reqs []idempotency.Request) ([]idempotency.Result, error) {
	if err := idempotency.ValidateBatch(reqs); err != nil {
		return nil, err
	}
	out := make([]idempotency.Result, len(reqs))
	if len(reqs) == 0 {
		return out, nil
	}
	op := "claim batch of " + strconv.Itoa(len(reqs))
	if err := ctx.Err(); err != nil {
		return nil, s.wrap(op, reqs[0].Key, err)
	}
	if s.perKey {
		if err := s.claimPerKey(ctx, reqs, out); err != nil {
			return nil, s.wrap(op, reqs[0].Key, err)
		}
		return out, nil
	}

	keys := make([]string, len(reqs))
	args := make([]any, 0, 2*len(reqs))
	for i, r := range reqs {
		keys[i] = s.prefix + r.Key
		args = append(args, strconv.FormatUint(r.Fingerprint, 10), millis(r.Lease))
	}
	vals, err := claimScript.Run(ctx, s.client, keys, args...).Int64Slice()
	if err == nil {
		err = decode(vals, out)
	}
	if err != nil {
		return nil, s.wrap(op, reqs[0].Key, err)
	}
	return out, nil
}

// claimPerKey pipelines one claim script call per key. Calls that found
// the script missing from the server's cache (NOSCRIPT: they did not run)
// are sent again with the script's source.
func (s *Store) claimPerKey(ctx context.Context, reqs []idempotency.Request,
	out []idempotency.Result) error {
	cmds := make([]*goredis.Cmd, len(reqs))
	send := func(eval bool) error {
		_, err := s.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, r := range reqs {
				if cmds[i] != nil && !goredis.HasErrorPrefix(cmds[i].Err(), "NOSCRIPT") {
					continue
				}
				keys := []string{s.prefix + r.Key}
				fp, ms := strconv.FormatUint(r.Fingerprint, 10), millis(r.Lease)
				if eval {
					cmds[i] = claimScript.Eval(ctx, p, keys, fp, ms)
				} else {
					cmds[i] = claimScript.EvalSha(ctx, p, keys, fp, ms)
				}
			}
			return nil
		})
		return err
	}
	if err := send(false); err != nil {
		if !goredis.HasErrorPrefix(err, "NOSCRIPT") {
			return err
		}
		if err := send(true); err != nil {
			return err
		}
	}
	for i, c := range cmds {
		vals, err := c.Int64Slice()
		if err == nil {
			err = decode(vals, out[i:i+1])
		}
		if err != nil {
			return fmt.Errorf("key %q: %w", reqs[i].Key, err)
		}
	}
	return nil
}

// decode turns the claim script's triples into results.
func decode(vals []int64, out []idempotency.Result) error {
	if len(vals) != 3*len(out) {
		return fmt.Errorf("claim script returned %d values for %d keys", len(vals), len(out))
	}
	for i := range out {
		st, tok, until := vals[3*i], vals[3*i+1], vals[3*i+2]
		switch idempotency.Status(st) {
		case idempotency.Acquired:
			out[i] = idempotency.Result{Status: idempotency.Acquired, Token: idempotency.Token(tok),
				Until: time.UnixMicro(until)}
		case idempotency.InProgress:
			out[i] = idempotency.Result{Status: idempotency.InProgress, Until: time.UnixMicro(until)}
		case idempotency.Completed, idempotency.Conflict:
			out[i] = idempotency.Result{Status: idempotency.Status(st)}
		default:
			return fmt.Errorf("claim script returned status %d", st)
		}
	}
	return nil
}

// Complete implements idempotency.Store. The retention is rounded up to
// whole milliseconds, at least 1.
func (s *Store) Complete(ctx context.Context, key string, token idempotency.Token,
	retain time.Duration) error {
	return s.settle(ctx, "complete", completeScript, key, token, millis(retain))
}

// Release implements idempotency.Store.
func (s *Store) Release(ctx context.Context, key string, token idempotency.Token) error {
	return s.settle(ctx, "release", releaseScript, key, token)
}

func (s *Store) settle(ctx context.Context, op string, script *goredis.Script, key string,
	token idempotency.Token, args ...any) error {
	if err := idempotency.ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return s.wrap(op, key, err)
	}
	args = append([]any{strconv.FormatInt(int64(token), 10)}, args...)
	ok, err := script.Run(ctx, s.client, []string{s.prefix + key}, args...).Int64()
	switch {
	case err != nil:
		return s.wrap(op, key, err)
	case ok == 0:
		return fmt.Errorf("idempotency/redis: %s %q with token %d: %w", op, key, token,
			idempotency.ErrStaleToken)
	}
	return nil
}

// wrap names the operation and key. Failures to reach Redis also wrap
// providers.ErrUnavailable, a closed client providers.ErrClosed; a done
// context wraps the context's error.
func (s *Store) wrap(op, key string, err error) error {
	var netErr net.Error
	switch {
	case errors.Is(err, goredis.ErrClosed):
		return fmt.Errorf("idempotency/redis: %s %q: %w: %w", op, s.prefix+key, providers.ErrClosed, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
	case errors.As(err, &netErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, goredis.ErrPoolTimeout), errors.Is(err, goredis.ErrPoolExhausted):
		return fmt.Errorf("idempotency/redis: %s %q: %w: %w", op, s.prefix+key,
			providers.ErrUnavailable, err)
	}
	return fmt.Errorf("idempotency/redis: %s %q: %w", op, s.prefix+key, err)
}
