package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/blob"
	"github.com/kopia/kopia/repo/blob/filesystem"
	"github.com/kopia/kopia/repo/content"
	"github.com/kopia/kopia/repo/format"
	"github.com/kopia/kopia/snapshot"
)

// errNoRepository is an item that has stored nothing yet.
var errNoRepository = errors.New("no repository")

// Every repository is made the same way: kopia's authenticated encryption
// and keyed hashing, and content-defined chunks of 1 MiB on average, as
// restic's, so a small change costs little.
var newRepository = repo.NewRepositoryOptions{
	BlockFormat: format.ContentFormat{
		Hash:              "BLAKE2B-256-128",
		Encryption:        "AES256-GCM-HMAC-SHA256",
		MutableParameters: format.MutableParameters{Version: format.FormatVersion3, MaxPackSize: 20 << 20},
	},
	ObjectFormat: format.ObjectFormat{Splitter: "DYNAMIC-1M-BUZHASH"},
	// PBKDF2-SHA256 with 600,000 iterations (NIST's recommendation): half
	// of scrypt's time per open, 0.15 s against 0.27 s on a test machine.
	FormatBlockKeyDerivationAlgorithm: "pbkdf2-sha256-600000",
}

// sourceOf names the snapshots of an item's repository.
func sourceOf(vaultID, itemID string) snapshot.SourceInfo {
	return snapshot.SourceInfo{Host: "recoveryvault", UserName: vaultID, Path: "/" + vaultID + "/" + itemID}
}

// Opening a repository derives its key from the password (PBKDF2, about
// 0.15 s of CPU; older repositories scrypt, 0.27 s and 64 MiB). A store
// keeps the repositories it opened, the most recently used first, up to
// maxOpen.
const maxOpen = 64

type openRepository struct {
	repo.DirectRepository
	key      string
	lastUsed time.Time
}

// open returns an item's repository, opened, made first when create is
// set: the objects it writes are kept until lockUntil where the store
// locks. It refreshes what it knows of the repository, which another
// worker may have written to. The store keeps it open; forget closes it.
func (s *Store) open(ctx context.Context, vaultID, itemID string, lockUntil time.Time, create bool) (repo.DirectRepository, error) {
	key := itemPrefix(vaultID, itemID)
	lockUntilFor(s, key).Store(lockUntil.UnixNano())
	if b, ok := s.backend.(*bucket); ok {
		tombstoneMACs.Store(lockKey(s, key), b.mac)
	}
	s.mu.Lock()
	r, ok := s.repos[key]
	if ok {
		r.lastUsed = time.Now()
	}
	s.mu.Unlock()
	if ok {
		// Another worker may have purged it since, and a new item of the
		// same name made a new one.
		if still, err := s.backend.initialized(ctx, key); err != nil || !still {
			s.forget(ctx, key)
			return s.open(ctx, vaultID, itemID, lockUntil, create)
		}
		if err := r.Refresh(ctx); err != nil {
			s.forget(ctx, key)
			return nil, fmt.Errorf("refresh the repository of item %s: %w", itemID, err)
		}
		return r, nil
	}
	dr, err := s.openRepository(ctx, vaultID, itemID, create)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.repos[key] = &openRepository{DirectRepository: dr, key: key, lastUsed: time.Now()}
	if len(s.repos) > maxOpen {
		oldest := s.repos[key]
		for _, o := range s.repos {
			if o.lastUsed.Before(oldest.lastUsed) {
				oldest = o
			}
		}
		delete(s.repos, oldest.key)
		_ = oldest.Close(ctx)
	}
	return dr, nil
}

// forget closes an item's repository, if it is open.
func (s *Store) forget(ctx context.Context, key string) {
	s.mu.Lock()
	r, ok := s.repos[key]
	delete(s.repos, key)
	s.mu.Unlock()
	if ok {
		_ = r.Close(ctx)
	}
}

func (s *Store) openRepository(ctx context.Context, vaultID, itemID string, create bool) (repo.DirectRepository, error) {
	s.opening <- struct{}{}
	defer func() { <-s.opening }()
	prefix := itemPrefix(vaultID, itemID)
	ci := s.backend.connection(prefix, lockKey(s, prefix))
	ok, err := s.backend.initialized(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("look for the repository of item %s: %w", itemID, err)
	}
	if !ok && !create {
		return nil, errNoRepository
	}
	if !ok {
		if err := s.create(ctx, ci); err != nil {
			return nil, fmt.Errorf("create the repository of item %s: %w", itemID, err)
		}
	}
	// Kopia opens a repository from a connection file: ours holds where the
	// repository is and no secret; there is no cache, so nothing of the
	// data is kept on the worker's disk.
	cfg := filepath.Join(s.opts.WorkDir, vaultID, itemID+".kopia.config")
	data, err := json.Marshal(repo.LocalConfig{
		Storage:       &ci,
		Caching:       &content.CachingOptions{},
		ClientOptions: repo.ClientOptions{Hostname: "recoveryvault", Username: vaultID},
	})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(cfg), 0o700); err != nil {
		return nil, fmt.Errorf("store work directory: %w", err)
	}
	if err := os.WriteFile(cfg, data, 0o600); err != nil {
		return nil, fmt.Errorf("store work directory: %w", err)
	}
	r, err := repo.Open(ctx, cfg, s.opts.Password, &repo.Options{
		DisableRepositoryLog: true,
		// Kopia's default ends the process; a worker reports and goes on.
		OnFatalError: func(error) {},
	})
	if errors.Is(err, repo.ErrInvalidPassword) {
		return nil, fmt.Errorf("the repository of item %s does not open with this worker's repository password: every worker must be given the same one", itemID)
	}
	if err != nil {
		return nil, fmt.Errorf("open the repository of item %s: %w", itemID, err)
	}
	return r.(repo.DirectRepository), nil
}

// formatBlobs are the blobs that make a repository, written in this order:
// kopia.repository last, since its presence says the repository exists.
var formatBlobs = []blob.ID{format.KopiaBlobCfgBlobID, format.KopiaRepositoryBlobID}

// create makes a new item's repository by writing the store's template's
// format blobs to it. Making a repository derives a key from the password,
// as opening one does: the template is made once per store, so a new item
// costs one derivation (its open), not two. Repositories made from one
// template share their keys; all of them open with the store's one
// password anyway, and each is still its own set of objects, purged alone.
func (s *Store) create(ctx context.Context, ci blob.ConnectionInfo) error {
	template, err := s.template(ctx)
	if err != nil {
		return err
	}
	st, err := blob.NewStorage(ctx, ci, true)
	if err != nil {
		return err
	}
	defer st.Close(ctx)
	// Another attempt of the same activity, maybe on another worker with
	// another template, may have made it first, and written data with its
	// keys: never replace a format.
	if _, err := st.GetMetadata(ctx, format.KopiaRepositoryBlobID); err == nil {
		return nil
	} else if !errors.Is(err, blob.ErrBlobNotFound) {
		return fmt.Errorf("look for %s: %w", format.KopiaRepositoryBlobID, err)
	}
	for _, id := range formatBlobs {
		if err := st.PutBlob(ctx, id, blobBytes(template[id]), blob.PutOptions{}); err != nil {
			return fmt.Errorf("write %s: %w", id, err)
		}
	}
	return nil
}

// template makes a repository in a directory of the work directory, once
// it succeeds, and keeps its format blobs; a failure (a cancelled activity,
// a full disk) is tried again by the next new item.
func (s *Store) template(ctx context.Context) (map[blob.ID][]byte, error) {
	s.templateMu.Lock()
	defer s.templateMu.Unlock()
	if s.templateBlobs == nil {
		blobs, err := makeTemplate(ctx, s.opts.WorkDir, s.opts.Password)
		if err != nil {
			return nil, err
		}
		s.templateBlobs = blobs
	}
	return s.templateBlobs, nil
}

func makeTemplate(ctx context.Context, workDir, password string) (map[blob.ID][]byte, error) {
	if err := os.MkdirAll(workDir, 0o700); err != nil {
		return nil, fmt.Errorf("store work directory: %w", err)
	}
	dir, err := os.MkdirTemp(workDir, "template-")
	if err != nil {
		return nil, fmt.Errorf("store work directory: %w", err)
	}
	defer os.RemoveAll(dir)
	st, err := filesystem.New(ctx, &filesystem.Options{Path: dir}, true)
	if err != nil {
		return nil, err
	}
	defer st.Close(ctx)
	opts := newRepository
	if err := repo.Initialize(ctx, st, &opts, password); err != nil {
		return nil, fmt.Errorf("make the repository template: %w", err)
	}
	blobs := map[blob.ID][]byte{}
	for _, id := range formatBlobs {
		var b blobBuffer
		if err := st.GetBlob(ctx, id, 0, -1, &b); err != nil {
			return nil, fmt.Errorf("read the repository template's %s: %w", id, err)
		}
		blobs[id] = b.Bytes()
	}
	return blobs, nil
}

// blobBytes is a blob's content to write, in memory.
type blobBytes []byte

func (b blobBytes) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b)
	return int64(n), err
}
func (b blobBytes) Length() int               { return len(b) }
func (b blobBytes) Reader() io.ReadSeekCloser { return nopCloser{bytes.NewReader(b)} }

type nopCloser struct{ io.ReadSeeker }

func (nopCloser) Close() error { return nil }

// blobBuffer receives a blob's content read.
type blobBuffer struct{ bytes.Buffer }

func (b *blobBuffer) Length() int { return b.Len() }

// lockTimes hold, for each item a store has open, until when its next
// writes are locked: kopia makes the storage from a connection file, and
// the lock changes from one operation to the next.
var lockTimes sync.Map // lockKey -> *atomic.Int64, Unix nanoseconds

func lockKey(s *Store, prefix string) string { return fmt.Sprintf("%p/%s", s, prefix) }

func lockUntilFor(s *Store, prefix string) *atomic.Int64 {
	v, _ := lockTimes.LoadOrStore(lockKey(s, prefix), new(atomic.Int64))
	return v.(*atomic.Int64)
}
