// Package sqlite is an idempotency.Store in an SQLite file, on the pure-Go
// driver modernc.org/sqlite: embedded, durable across restarts and
// crashes, and shared by the consumers of one host. It is the default
// store of the herald command.
//
// The database runs in WAL mode with synchronous=FULL, so a claim or a
// completion that returned is on disk. Every operation is one transaction
// begun with BEGIN IMMEDIATE, which takes SQLite's write lock up front:
// goroutines of one process queue on the store's single connection, and
// other processes opening the same file wait up to BusyTimeout for the
// lock. ClaimBatch claims all its keys in one transaction, so a batch
// costs one disk sync instead of one per key.
//
// Leases and retention run on this host's clock, which every process
// sharing the file also reads. Expired rows are skipped by claims and
// removed by Cleanup.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/seed06bc8277/herald/idempotency"
	"github.com/seed06bc8277/herald/providers"
)

// BusyTimeout is how long an operation waits for another process's write
// transaction on the same file before failing with SQLITE_BUSY.
const BusyTimeout = 10 * time.Second

// Row states.
const (
	stateHeld      = 1
	stateReleased  = 2
	stateCompleted = 3
)

const schema = `
CREATE TABLE IF NOT EXISTS herald_idempotency (
	key         TEXT    PRIMARY KEY,
	fingerprint INTEGER NOT NULL, -- the uint64 fingerprint's bits as int64
	token       INTEGER NOT NULL, -- the fencing token of the latest claim
	state       INTEGER NOT NULL, -- 1 held, 2 released, 3 completed
	until_us    INTEGER NOT NULL  -- lease or retention end, Unix microseconds
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS herald_idempotency_until ON herald_idempotency (until_us);
`

// Store is an idempotency.Store in one SQLite file. It is safe for
// concurrent use by many goroutines, and several processes may open the
// same file.
type Store struct {
	db     *sql.DB
	path   string
	stmts  struct{ get, put, complete, release *sql.Stmt }
	now    func() time.Time
	closed atomic.Bool
}

var _ idempotency.Store = (*Store)(nil)

// Open opens the store in the SQLite file at path, creating the file and
// its table when missing. The caller must Close it.
func Open(path string) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("idempotency/sqlite: open: %w: empty path", providers.ErrInvalid)
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()

	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("idempotency/sqlite: open %s: %w", path, err)
	}
	// One connection: SQLite has one writer per file anyway, and queueing
	// in database/sql is far cheaper than SQLite's sleeping busy handler.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)

	if _, err := db.Exec(schema); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("idempotency/sqlite: create schema in %s: %w", path, err)
	}
	s := &Store{db: db, path: path, now: time.Now}
	for _, st := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&s.stmts.get, `SELECT fingerprint, token, state, until_us FROM herald_idempotency
			WHERE key = ?`},
		{&s.stmts.put, `INSERT INTO herald_idempotency (key, fingerprint, token, state, until_us)
			VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint,
				token = excluded.token, state = excluded.state, until_us = excluded.until_us`},
		{&s.stmts.complete, `UPDATE herald_idempotency SET state = ?, until_us = ?
			WHERE key = ? AND token = ? AND state = ?`},
		{&s.stmts.release, `UPDATE herald_idempotency SET state = ?, until_us = min(until_us, ?)
			WHERE key = ? AND token = ? AND state = ?`},
	} {
		if *st.dst, err = db.Prepare(st.query); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("idempotency/sqlite: prepare statements in %s: %w", path, err)
		}
	}
	return s, nil
}

// Close closes the database. Operations after Close fail with an error
// wrapping providers.ErrClosed.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	for _, st := range []*sql.Stmt{s.stmts.get, s.stmts.put, s.stmts.complete, s.stmts.release} {
		_ = st.Close()
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("idempotency/sqlite: close %s: %w", s.path, err)
	}
	return nil
}

// Claim implements idempotency.Store. Leases count whole microseconds,
// at least 1.
func (s *Store) Claim(ctx context.Context, key string, fingerprint uint64,
	lease time.Duration) (idempotency.Result, error) {
	req := []idempotency.Request{{Key: key, Fingerprint: fingerprint, Lease: lease}}
	if err := idempotency.ValidateKey(key); err != nil {
		return idempotency.Result{}, err
	}
	if lease <= 0 {
		return idempotency.Result{}, fmt.Errorf(
			"idempotency/sqlite: claim %q: lease must be positive, got %v", key, lease)
	}
	var res [1]idempotency.Result
	if err := s.claim(ctx, req, res[:]); err != nil {
		return idempotency.Result{}, fmt.Errorf("idempotency/sqlite: claim %q in %s: %w",
			key, s.path, err)
	}
	return res[0], nil
}

// ClaimBatch implements idempotency.Store: all keys are claimed in one
// transaction, so either every result holds or none does.
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
		return nil, fmt.Errorf("idempotency/sqlite: claim batch of %d in %s: %w", len(reqs), s.path, err)
	}
	return out, nil
}

func (s *Store) claim(ctx context.Context, reqs []idempotency.Request,
	out []idempotency.Result) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()

	// Read the clock once the write lock is held.
	nowUS := s.now().UnixMicro()
	get, put := tx.StmtContext(ctx, s.stmts.get), tx.StmtContext(ctx, s.stmts.put)
	for i, r := range reqs {
		var (
			fp, token, until int64
			state            int
			exists           = true
		)
		err := get.QueryRowContext(ctx, r.Key).Scan(&fp, &token, &state, &until)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			exists = false
		case err != nil:
			return err
		}

		// A live claim or completion answers without a write.
		if exists && state != stateReleased && nowUS < until {
			switch {
			case uint64(fp) != r.Fingerprint:
				out[i] = idempotency.Result{Status: idempotency.Conflict}
			case state == stateCompleted:
				out[i] = idempotency.Result{Status: idempotency.Completed}
			default:
				out[i] = idempotency.Result{Status: idempotency.InProgress, Until: time.UnixMicro(until)}
			}
			continue
		}

		// Free, released or expired: take it with a larger token.
		newToken := max(token+1, nowUS)
		leaseEnd := nowUS + max(r.Lease.Microseconds(), 1)
		_, err = put.ExecContext(ctx,
			r.Key, int64(r.Fingerprint), newToken, stateHeld, leaseEnd)
		if err != nil {
			return err
		}
		out[i] = idempotency.Result{
			Status: idempotency.Acquired, Token: idempotency.Token(newToken),
			Until: time.UnixMicro(leaseEnd),
		}
	}
	return tx.Commit()
}

// Complete implements idempotency.Store. A claim whose lease ran out but
// that nobody took over still completes. A retention of zero or less lets
// the key be claimed again at once.
func (s *Store) Complete(ctx context.Context, key string, token idempotency.Token,
	retain time.Duration) error {
	until := s.now().Add(retain).UnixMicro()
	return s.settle(ctx, "complete", key, token, s.stmts.complete, stateCompleted, until, key, int64(token), stateHeld)
}

// Release implements idempotency.Store. The row keeps its token, so that
// the next claim's token is larger still.
func (s *Store) Release(ctx context.Context, key string, token idempotency.Token) error {
	now := s.now().UnixMicro()
	return s.settle(ctx, "release", key, token, s.stmts.release, stateReleased, now, key, int64(token), stateHeld)
}

func (s *Store) settle(ctx context.Context, op, key string, token idempotency.Token,
	stmt *sql.Stmt, args ...any) error {
	if err := idempotency.ValidateKey(key); err != nil {
		return err
	}
	err := func() error {
		tx, err := s.begin(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }()
		res, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return idempotency.ErrStaleToken
		}
		return tx.Commit()
	}()
	if err != nil {
		return fmt.Errorf("idempotency/sqlite: %s %q with token %d in %s: %w",
			op, key, token, s.path, err)
	}
	return nil
}

// Cleanup deletes up to limit rows whose lease or retention ended, and
// returns how many it deleted. Claims already ignore such rows; Cleanup
// only keeps the file small. A removed claim whose lease had ended can no
// longer be completed: its worker's Complete fails with ErrStaleToken.
// Call it periodically, e.g. every minute with
// a limit of 10000, until it returns fewer than limit.
func (s *Store) Cleanup(ctx context.Context, limit int) (int64, error) {
	if limit <= 0 {
		return 0, fmt.Errorf("idempotency/sqlite: cleanup %s: %w: limit must be positive, got %d",
			s.path, providers.ErrInvalid, limit)
	}
	n, err := func() (int64, error) {
		tx, err := s.begin(ctx)
		if err != nil {
			return 0, err
		}
		defer func() { _ = tx.Rollback() }()
		res, err := tx.ExecContext(ctx,
			`DELETE FROM herald_idempotency WHERE key IN (
				SELECT key FROM herald_idempotency WHERE until_us <= ? LIMIT ?)`,
			s.now().UnixMicro(), limit)
		if err != nil {
			return 0, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, err
		}
		return n, tx.Commit()
	}()
	if err != nil {
		return 0, fmt.Errorf("idempotency/sqlite: cleanup %s: %w", s.path, err)
	}
	return n, nil
}

// begin starts a write transaction (BEGIN IMMEDIATE, from the DSN's
// _txlock), after checking that the store is open and ctx is live.
func (s *Store) begin(ctx context.Context) (*sql.Tx, error) {
	if s.closed.Load() {
		return nil, providers.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil && s.closed.Load() {
		return nil, providers.ErrClosed
	}
	return tx, err
}
