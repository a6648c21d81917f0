package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/seed06bc8277/herald/idempotency"
)

// claimSQL claims every key of the arrays $1 (keys), $2 (fingerprints),
// $3 (leases in microseconds) in one statement, and returns one row per
// key in the arrays' order: ordinal, status, token, until.
//
// The INSERT takes the keys that are free, released or expired, in byte
// order so that concurrent batches lock rows in the same order and cannot
// deadlock. ON CONFLICT re-checks a locked row's latest version, so two
// claims never both take a key. For the keys it did not take, the final
// SELECT reports the row as the statement's snapshot shows it. When that
// row is missing or looks claimable, a concurrent claim changed it while
// this statement waited; status 0 asks the caller to claim that key again.
const claimSQL = `
WITH req AS (
	SELECT k, fp, lease_us, ord
	FROM unnest($1::bytea[], $2::int8[], $3::int8[]) WITH ORDINALITY AS r (k, fp, lease_us, ord)
),
clock AS (
	SELECT now() AS now, (extract(epoch FROM now()) * 1000000)::int8 AS now_us
),
taken AS (
	INSERT INTO {{table}} AS t (key, fingerprint, token, state, until)
	SELECT req.k, req.fp, clock.now_us, 1, clock.now + req.lease_us * interval '1 microsecond'
	FROM req CROSS JOIN clock
	ORDER BY req.k
	ON CONFLICT (key) DO UPDATE
	SET fingerprint = excluded.fingerprint,
		token = greatest(t.token + 1, excluded.token),
		state = 1,
		until = excluded.until
	WHERE t.state = 2 OR t.until <= now()
	RETURNING t.key, t.token, t.until
)
SELECT req.ord,
	CASE
		WHEN taken.key IS NOT NULL THEN 1
		WHEN cur.key IS NULL OR cur.state = 2 OR cur.until <= clock.now THEN 0
		WHEN cur.fingerprint <> req.fp THEN 4
		WHEN cur.state = 3 THEN 3
		ELSE 2
	END,
	coalesce(taken.token, 0),
	coalesce(taken.until, cur.until, clock.now)
FROM req
CROSS JOIN clock
LEFT JOIN taken ON taken.key = req.k
LEFT JOIN {{table}} cur ON cur.key = req.k AND taken.key IS NULL
ORDER BY req.ord`

// maxClaimRounds bounds the re-claims of keys that changed while a claim
// statement waited; each round is rarer than the last.
const maxClaimRounds = 8

// Claim implements idempotency.Store. The lease is rounded down to whole
// microseconds, at least 1.
func (s *Store) Claim(ctx context.Context, key string, fingerprint uint64,
	lease time.Duration) (idempotency.Result, error) {
	if err := idempotency.ValidateKey(key); err != nil {
		return idempotency.Result{}, err
	}
	if lease <= 0 {
		return idempotency.Result{}, fmt.Errorf(
			"idempotency/postgres: claim %q: lease must be positive, got %v", key, lease)
	}
	var out [1]idempotency.Result
	reqs := [1]idempotency.Request{{Key: key, Fingerprint: fingerprint, Lease: lease}}
	if err := s.claim(ctx, reqs[:], out[:]); err != nil {
		return idempotency.Result{}, s.wrap("claim", key, err)
	}
	return out[0], nil
}

// ClaimBatch implements idempotency.Store with one statement for the
// batch (more only for keys that a concurrent claim changed meanwhile).
func (s *Store) ClaimBatch(ctx context.Context,
	reqs []idempotency.Request) ([]idempotency.Result, error) {
	if err := idempotency.ValidateBatch(reqs); err != nil {
		return nil, err
	}
	out := make([]idempotency.Result, len(reqs))
	if len(reqs) == 0 {
		return out, nil
	}
	if err := s.claim(ctx, reqs, out); err != nil {
		return nil, s.wrap(fmt.Sprintf("claim batch of %d from", len(reqs)), reqs[0].Key, err)
	}
	return out, nil
}

// claim runs claimSQL for reqs, then again for the keys it reported as
// changed meanwhile, until every key has an answer.
func (s *Store) claim(ctx context.Context, reqs []idempotency.Request,
	out []idempotency.Result) error {
	if s.err != nil {
		return s.err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	pending := make([]int, len(reqs))
	for i := range pending {
		pending[i] = i
	}
	for range maxClaimRounds {
		keys := make([][]byte, len(pending))
		fps := make([]int64, len(pending))
		leases := make([]int64, len(pending))
		for j, i := range pending {
			keys[j] = []byte(reqs[i].Key)
			fps[j] = int64(reqs[i].Fingerprint)
			leases[j] = max(reqs[i].Lease.Microseconds(), 1)
		}
		rows, err := s.pool.Query(ctx, s.sqlClaim, keys, fps, leases)
		if err != nil {
			return err
		}
		var (
			again        []int
			ord, tok     int64
			status       int32
			until        time.Time
			answeredRows int
		)
		for rows.Next() {
			if err := rows.Scan(&ord, &status, &tok, &until); err != nil {
				rows.Close()
				return err
			}
			if ord < 1 || int(ord) > len(pending) {
				rows.Close()
				return fmt.Errorf("claim statement returned ordinal %d for %d keys", ord, len(pending))
			}
			answeredRows++
			i := pending[ord-1]
			switch idempotency.Status(status) {
			case idempotency.Acquired:
				out[i] = idempotency.Result{Status: idempotency.Acquired,
					Token: idempotency.Token(tok), Until: until}
			case idempotency.InProgress:
				out[i] = idempotency.Result{Status: idempotency.InProgress, Until: until}
			case idempotency.Completed, idempotency.Conflict:
				out[i] = idempotency.Result{Status: idempotency.Status(status)}
			default:
				again = append(again, i)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if answeredRows != len(pending) {
			return fmt.Errorf("claim statement returned %d rows for %d keys", answeredRows, len(pending))
		}
		if len(again) == 0 {
			return nil
		}
		pending = again
	}
	return fmt.Errorf("%d keys changed under %d claim rounds in a row", len(pending), maxClaimRounds)
}
