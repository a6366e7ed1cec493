// Package store keeps items' recovery points: each item has its own
// deduplicating, compressed and encrypted repository (kopia's), in a
// directory or on S3-compatible object storage, and each recovery point is a
// snapshot in it. A snapshot carries the list of its files with their
// SHA-256, whose own hash is the recovery point's content hash: the workflow
// records it, and a restore is checked against it before anything reaches
// its target. On a bucket with object lock, every object carries a
// retention that keeps it at least until it may lawfully be purged.
//
// Why one repository per item: a purge then deletes everything under the
// item's prefix, every version of every object, so nothing of a purged item
// can be recovered, and an object's lock never has to outlive its item. The
// price is deduplication across items, which a per-vault repository would
// give but could only purge by rewriting shared packs, under locks held for
// the vault's longest-lived item.
package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/kopia/kopia/repo/blob"
)

// Store errors that no retry can fix.
// NamedError is a failure whose detail names files of a source: its
// Error is a sentence that names none, for histories; Detail is for the
// worker's log.
type NamedError struct {
	public string
	err    error
}

func named(public string, err error) error { return &NamedError{public: public, err: err} }

func (e *NamedError) Error() string  { return e.public + "; the worker's log names the files" }
func (e *NamedError) Unwrap() error  { return e.err }
func (e *NamedError) Detail() string { return e.err.Error() }

var (
	ErrSourceMissing        = errors.New("source missing")
	ErrUnknownRecoveryPoint = errors.New("unknown recovery point")
	ErrTargetNotEmpty       = errors.New("target not empty")
	ErrCorrupted            = errors.New("recovery point corrupted")
	ErrInvalidInput         = errors.New("invalid input")
)

// Options say where the store is and how to open it.
type Options struct {
	// Location is a directory, or s3://BUCKET/PREFIX; S3 is configured by
	// the AWS SDK's standard environment.
	Location string
	// Password encrypts every repository; losing it loses every backup.
	Password string
	// WorkDir is the worker's own directory for the repositories'
	// connection files (no secrets in them); workers do not share it.
	WorkDir string
	// LockMode is the object-lock mode on a bucket with object lock:
	// COMPLIANCE (the default) or GOVERNANCE.
	LockMode string
	// SourceRoots and RestoreRoots are the host directories that sources
	// and restore targets must lie inside; with none, every backup or
	// restore is refused.
	SourceRoots, RestoreRoots []string
	// Private are the worker's own directories (its data directory), which
	// no source may hold and no restore may write into.
	Private []string
	// RestoreOwners restores files' owners; otherwise what is restored
	// belongs to the worker's user.
	RestoreOwners bool
	// NoObjectLock runs on a bucket without using its object lock, or
	// without knowing whether it has one.
	NoObjectLock bool
}

// Store is the recovery-point store of a worker.
type Store struct {
	opts    Options
	backend backend
	// opening bounds repositories opened at once: each open derives the
	// key from the password, ~0.15 s of CPU.
	opening chan struct{}
	// The template new repositories are made from (create).
	templateMu    sync.Mutex
	templateBlobs map[blob.ID][]byte
	// items serialises the operations on one item's repository within
	// this process; the workflow runs one at a time across workers.
	mu    sync.Mutex
	items map[string]*sync.Mutex
	repos map[string]*openRepository
}

// Progress is told the bytes handled so far; activities heartbeat with it.
type Progress func(bytes int64)

// Open checks the location and returns the store. An S3 bucket is looked
// at once: it must exist, and its object lock decides whether objects are
// locked.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Password == "" {
		return nil, errors.New("the store needs a repository password: set RECOVERYVAULT_REPOSITORY_PASSWORD or give a password file")
	}
	if o.WorkDir == "" {
		return nil, errors.New("the store needs a work directory for its connection files")
	}
	if o.LockMode == "" {
		o.LockMode = "COMPLIANCE"
	}
	if mode := strings.ToUpper(o.LockMode); mode == "COMPLIANCE" || mode == "GOVERNANCE" {
		o.LockMode = mode
	} else {
		return nil, fmt.Errorf("object-lock mode %q is not known: use COMPLIANCE or GOVERNANCE", o.LockMode)
	}
	s := &Store{opts: o, opening: make(chan struct{}, 2), items: map[string]*sync.Mutex{}, repos: map[string]*openRepository{}}
	var err error
	if strings.HasPrefix(o.Location, "s3://") {
		var b *bucket
		b, err = openS3(ctx, o.Location, o.LockMode, o.NoObjectLock)
		if err == nil {
			b.mac = tombstoneKey(o.Password)
			s.backend = b
		}
	} else {
		s.backend, err = openDirectory(o.Location)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// String says where the store is, as the worker prints it.
func (s *Store) String() string { return s.backend.String() }

// ObjectLock says how the store keeps objects against deletion, for a
// status: "" on a directory.
func (s *Store) ObjectLock() string {
	b, ok := s.backend.(*bucket)
	switch {
	case !ok:
		return ""
	case b.locked:
		return "object lock " + string(b.lockMode)
	case b.unlocked != "":
		return "object lock not used: " + b.unlocked
	}
	return "none: the bucket has no object lock"
}

// Locks is true when the store locks its objects (a bucket with object
// lock).
func (s *Store) Locks() bool { return s.backend.locks() }

// lockItem holds the item's operations in this process until unlock.
func (s *Store) lockItem(vaultID, itemID string) (unlock func()) {
	s.mu.Lock()
	m, ok := s.items[vaultID+"/"+itemID]
	if !ok {
		m = &sync.Mutex{}
		s.items[vaultID+"/"+itemID] = m
	}
	s.mu.Unlock()
	m.Lock()
	return m.Unlock
}

func checkName(kind, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return fmt.Errorf("%w: %s %q cannot name a part of the store", ErrInvalidInput, kind, name)
	}
	return nil
}

func checkNames(vaultID, itemID string, ids ...string) error {
	if err := checkName("vault", vaultID); err != nil {
		return err
	}
	if err := checkName("item", itemID); err != nil {
		return err
	}
	for _, id := range ids {
		if err := checkName("recovery point", id); err != nil {
			return err
		}
	}
	return nil
}

// Lock keeps every object of an item until at least until: on a bucket
// with object lock, a retention that is only ever extended; elsewhere
// nothing. It is how the rolling retention moves forward, and how a
// soft-deleted item's objects are held exactly until its deadline.
func (s *Store) Lock(ctx context.Context, vaultID, itemID string, until time.Time, progress Progress) (Tamper, error) {
	if err := checkNames(vaultID, itemID); err != nil {
		return Tamper{}, err
	}
	// A time already past needs nothing kept, and S3 refuses it.
	if !s.Locks() || !until.After(time.Now()) {
		return Tamper{}, nil
	}
	defer s.lockItem(vaultID, itemID)()
	return s.backend.lock(ctx, itemPrefix(vaultID, itemID), until, progress)
}

// unhide removes the delete markers someone put on an item's objects, on
// a store that locks (elsewhere no marker can hide anything).
func (s *Store) unhide(ctx context.Context, vaultID, itemID string) ([]string, error) {
	if !s.Locks() {
		return nil, nil
	}
	hid, err := s.backend.unhide(ctx, itemPrefix(vaultID, itemID))
	if err != nil {
		return nil, fmt.Errorf("look for delete markers on item %s: %w", itemID, err)
	}
	if len(hid) > 0 {
		// kopia may hold what it listed before.
		s.forget(ctx, itemPrefix(vaultID, itemID))
	}
	return hid, nil
}

// Purge destroys every byte the store holds for an item, every version of
// every object, including anything an interrupted backup left behind.
// Purging an absent item succeeds; an object still locked makes it fail,
// to be retried.
func (s *Store) Purge(ctx context.Context, vaultID, itemID string, progress Progress) error {
	if err := checkNames(vaultID, itemID); err != nil {
		return err
	}
	defer s.lockItem(vaultID, itemID)()
	s.forget(ctx, itemPrefix(vaultID, itemID))
	if err := s.backend.purge(ctx, itemPrefix(vaultID, itemID), progress); err != nil {
		return fmt.Errorf("purge item %s: %w", itemID, err)
	}
	// Nor is the worker left with the item's connection file.
	files, _ := filepath.Glob(filepath.Join(s.opts.WorkDir, vaultID, itemID+".kopia.config*"))
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			return fmt.Errorf("purge item %s: %w", itemID, err)
		}
	}
	_ = os.Remove(filepath.Join(s.opts.WorkDir, vaultID)) // only if no other item's is there
	return nil
}

// itemPrefix is where an item's repository lives in the store.
func itemPrefix(vaultID, itemID string) string { return vaultID + "/" + itemID + "/" }

// resolveExisting resolves p's symlinks; a path that does not exist yet is
// resolved through its deepest existing ancestor.
func resolveExisting(p string) (string, error) {
	p, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	var rest []string
	for {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(append([]string{r}, rest...)...), nil
		}
		parent := filepath.Dir(p)
		if parent == p {
			return "", fmt.Errorf("no part of %s exists", p)
		}
		rest = append([]string{filepath.Base(p)}, rest...)
		p = parent
	}
}

func checkTargetEmpty(target string) error {
	info, err := os.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect target %s: %w", target, err)
	}
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%w: %s is a symbolic link: restore into an absent or empty directory", ErrTargetNotEmpty, target)
	case !info.IsDir():
		return fmt.Errorf("%w: %s is a file, not a directory: restore into an absent or empty directory", ErrTargetNotEmpty, target)
	}
	entries, err := os.ReadDir(target)
	if err != nil {
		return fmt.Errorf("inspect target %s: %w", target, err)
	}
	if len(entries) > 0 {
		return fmt.Errorf("%w: %s is a directory that is not empty: restore into an absent or empty directory, so that nothing is overwritten", ErrTargetNotEmpty, target)
	}
	return nil
}

func syncDir(p string) error {
	d, err := os.Open(p)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
