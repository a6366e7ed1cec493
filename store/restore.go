package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	kopiafs "github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/restore"
	"github.com/kopia/kopia/snapshot/snapshotfs"
)

// Restored tells what a restore wrote.
type Restored struct {
	Files int
	Bytes int64
	// Unhidden are the item's objects someone had hidden under delete
	// markers, which the store removed.
	Unhidden []string
}

// Restore writes recovery point id of an item under target, which must be
// absent or an empty directory. The point's file list must hash to
// wantSHA256, the content hash the workflow recorded; the tree is restored
// into a staging directory beside target, every entry checked against the
// list (each file's SHA-256 computed as it is written), and only then moved
// into target, so a damaged point never lands. A damaged or missing object
// is reported by name.
func (s *Store) Restore(ctx context.Context, vaultID, itemID, id, wantSHA256, target string, progress Progress) (Restored, error) {
	if err := checkNames(vaultID, itemID, id); err != nil {
		return Restored{}, err
	}
	if !filepath.IsAbs(target) {
		return Restored{}, fmt.Errorf("%w: target path %q is not absolute", ErrInvalidInput, target)
	}
	c, err := confine(s.opts.RestoreRoots, target, "restore", RestoreRootFlag)
	if err != nil {
		return Restored{}, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	defer c.root.Close()
	if err := s.checkPrivate(c.real, "restore target"); err != nil {
		return Restored{}, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	target = c.real
	defer s.lockItem(vaultID, itemID)()
	// What someone hid under delete markers is brought back first: the
	// item restores whole.
	unhidden, err := s.unhide(ctx, vaultID, itemID)
	if err != nil {
		return Restored{}, err
	}
	r, man, list, err := s.openPoint(ctx, vaultID, itemID, id, wantSHA256)
	if err != nil {
		return Restored{}, err
	}
	if err := checkTargetEmpty(target); err != nil {
		return Restored{}, err
	}
	// Parents, and the staging directory beside the target, are made
	// inside the root, private to the worker's user; the restore writes
	// only inside the staging directory, through a root opened on it.
	parent := filepath.Dir(target)
	if err := c.root.MkdirAll(filepath.Dir(c.rel), 0o700); err != nil {
		return Restored{}, fmt.Errorf("create parent of target %s: %w", target, err)
	}
	name := ".restore-" + id + "-" + rand.Text()
	relStaging := filepath.Join(filepath.Dir(c.rel), name)
	if err := c.root.Mkdir(relStaging, 0o700); err != nil {
		return Restored{}, fmt.Errorf("create staging directory beside %s: %w", target, err)
	}
	defer func() { _ = c.root.RemoveAll(relStaging) }()
	stagingRoot, err := c.root.OpenRoot(relStaging)
	if err != nil {
		return Restored{}, fmt.Errorf("open staging directory beside %s: %w", target, err)
	}
	defer stagingRoot.Close()
	if err := s.checkOpened(c, stagingRoot, "restore target"); err != nil {
		return Restored{}, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	staging := filepath.Join(parent, name)

	rootEntry, err := snapshotfs.SnapshotRoot(r, man)
	if err != nil {
		return Restored{}, corrupted(id, "its root cannot be read: %v", err)
	}
	out := &rootOutput{root: stagingRoot, owners: s.opts.RestoreOwners, written: map[string]written{}}
	_, err = restore.Entry(ctx, r, out, rootEntry, restore.Options{
		Parallel: 4,
		// The zero value would restore only the top directory.
		RestoreDirEntryAtDepth: math.MaxInt32,
		ProgressCallback: func(_ context.Context, st restore.Stats) {
			if progress != nil {
				progress(st.RestoredTotalFileSize)
			}
		},
	})
	if err != nil {
		if ctx.Err() != nil {
			return Restored{}, ctx.Err()
		}
		return Restored{}, corrupted(id, "%v", err)
	}
	if err := unescapeNames(stagingRoot, list); err != nil {
		return Restored{}, fmt.Errorf("%w: recovery point %s: %w", ErrCorrupted, id, named("a name could not be given back", err))
	}
	// The staging directory was made here; it gets the root's permissions.
	if root, ok := list["."]; ok {
		if err := stagingRoot.Chmod(".", root.Mode.Perm()); err != nil {
			return Restored{}, err
		}
	}
	res, err := verify(staging, list, out.written)
	if err != nil {
		return Restored{}, fmt.Errorf("%w: recovery point %s: %w", ErrCorrupted, id, named("what was restored differs from the file list the backup recorded", err))
	}
	// Checked again: something may have written to target meanwhile.
	if err := checkTargetEmpty(target); err != nil {
		return Restored{}, err
	}
	// Where the target's parent really is, checked again just before the
	// move: the staging directory goes nowhere else.
	parentDir, err := c.root.OpenRoot(filepath.Dir(c.rel))
	if err != nil {
		return Restored{}, fmt.Errorf("open the parent of target %s: %w", target, err)
	}
	err = s.checkOpened(c, parentDir, "restore target's parent")
	parentDir.Close()
	if err != nil {
		return Restored{}, fmt.Errorf("%w: %v", ErrInvalidInput, err)
	}
	if err := c.root.Remove(c.rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Restored{}, fmt.Errorf("%w: %s is no longer empty: restore into an absent or empty directory", ErrTargetNotEmpty, target)
	}
	if err := c.root.Rename(relStaging, c.rel); err != nil {
		return Restored{}, fmt.Errorf("move restored tree into %s: %w", target, err)
	}
	// What is restored is the worker user's until someone hands it on.
	if err := c.root.Chmod(c.rel, 0o700); err != nil {
		return Restored{}, fmt.Errorf("make %s private: %w", target, err)
	}
	res.Unhidden = unhidden
	return res, syncDir(parent)
}

// openPoint opens recovery point id of an item: its repository, its
// snapshot, and its file list, which must hash to wantSHA256 when given.
func (s *Store) openPoint(ctx context.Context, vaultID, itemID, id, wantSHA256 string) (repo.DirectRepository, *snapshot.Manifest, map[string]fileEntry, error) {
	unknown := fmt.Errorf("%w: recovery point %s of item %s is not in the store", ErrUnknownRecoveryPoint, id, itemID)
	r, err := s.open(ctx, vaultID, itemID, time.Time{}, false)
	if errors.Is(err, errNoRepository) {
		return nil, nil, nil, unknown
	}
	if err != nil {
		return nil, nil, nil, err
	}
	src := sourceOf(vaultID, itemID)
	ids, err := snapshot.ListSnapshotManifests(ctx, r, &src, map[string]string{labelPoint: id})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("find recovery point %s: %w", id, err)
	}
	if len(ids) == 0 {
		return nil, nil, nil, unknown
	}
	man, err := snapshot.LoadSnapshot(ctx, r, ids[0])
	if err != nil {
		return nil, nil, nil, corrupted(id, "its snapshot cannot be read: %v", err)
	}
	data, err := readList(ctx, r, vaultID, itemID, id)
	if err != nil {
		return nil, nil, nil, corrupted(id, "its file list cannot be read: %v", err)
	}
	if sum := sha256.Sum256(data); wantSHA256 != "" && hex.EncodeToString(sum[:]) != wantSHA256 {
		return nil, nil, nil, corrupted(id, "its file list hashes to %s, the workflow recorded %s", hex.EncodeToString(sum[:]), wantSHA256)
	}
	list, err := decodeList(data)
	if err != nil {
		return nil, nil, nil, corrupted(id, "%v", err)
	}
	return r, man, list, nil
}

// unescapeNames gives back their exact bytes to the names kopia could
// only keep escaped, deepest first, so each rename finds its parent under
// the name kopia gave it.
func unescapeNames(staging *os.Root, list map[string]fileEntry) error {
	var raw []string
	for name, e := range list {
		if len(e.RawPath) > 0 && storedName(path.Base(name)) != path.Base(name) {
			raw = append(raw, name)
		}
	}
	slices.SortFunc(raw, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, name := range raw {
		dir := storedPath(path.Dir(name))
		from := filepath.Join(filepath.FromSlash(dir), storedName(path.Base(name)))
		to := filepath.Join(filepath.FromSlash(dir), path.Base(name))
		if err := staging.Rename(from, to); err != nil {
			return fmt.Errorf("give %q its name back: %w", name, err)
		}
	}
	return nil
}

func corrupted(id, format string, args ...any) error {
	return fmt.Errorf("%w: recovery point %s: %s", ErrCorrupted, id, fmt.Sprintf(format, args...))
}

// written is what a restore wrote of a file: its size and SHA-256.
type written struct {
	size   int64
	sha256 string
}

// rootOutput writes a restored tree inside a root opened on the staging
// directory, so nothing is written anywhere else whatever the tree or the
// host holds; it hashes every file as it writes it.
type rootOutput struct {
	root   *os.Root
	owners bool
	mu     sync.Mutex
	// written is what was written of each file, by its stored path.
	written map[string]written
}

func (o *rootOutput) Parallelizable() bool { return true }

func (o *rootOutput) BeginDirectory(_ context.Context, rel string, _ kopiafs.Directory) error {
	if rel = cleanRel(rel); rel == "." {
		return nil
	}
	return o.root.Mkdir(rel, 0o700)
}

func (o *rootOutput) WriteDirEntry(context.Context, string, *snapshot.DirEntry, kopiafs.Directory) error {
	return nil
}

// FinishDirectory gives a directory its mode, owner and time once its
// entries are written.
func (o *rootOutput) FinishDirectory(_ context.Context, rel string, e kopiafs.Directory) error {
	return o.finish(cleanRel(rel), e)
}

func (o *rootOutput) finish(rel string, e kopiafs.Entry) error {
	if o.owners {
		if err := o.root.Lchown(rel, int(e.Owner().UserID), int(e.Owner().GroupID)); err != nil {
			return err
		}
	}
	if err := o.root.Chmod(rel, e.Mode().Perm()); err != nil {
		return err
	}
	return o.root.Chtimes(rel, e.ModTime(), e.ModTime())
}

func (o *rootOutput) WriteFile(ctx context.Context, rel string, e kopiafs.File, progress restore.FileWriteProgress) error {
	rel = cleanRel(rel)
	r, err := e.Open(ctx)
	if err != nil {
		return err
	}
	f, err := o.root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		r.Close()
		return err
	}
	h := newHashingReader(r, rel, func(n int64) {
		if progress != nil {
			progress(n)
		}
	}, func(size int64, sum string) {
		o.mu.Lock()
		o.written[rel] = written{size: size, sha256: sum}
		o.mu.Unlock()
	})
	_, err = io.Copy(f, ctxReader{ctx: ctx, r: h})
	h.Close() // closes r
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return o.finish(rel, e)
}

func (o *rootOutput) FileExists(context.Context, string, kopiafs.File) bool { return false }

func (o *rootOutput) CreateSymlink(ctx context.Context, rel string, e kopiafs.Symlink) error {
	target, err := e.Readlink(ctx)
	if err != nil {
		return err
	}
	rel = cleanRel(rel)
	if err := o.root.Symlink(target, rel); err != nil {
		return err
	}
	if o.owners {
		return o.root.Lchown(rel, int(e.Owner().UserID), int(e.Owner().GroupID))
	}
	return nil
}

func (o *rootOutput) SymlinkExists(context.Context, string, kopiafs.Symlink) bool { return false }

func (o *rootOutput) Close(context.Context) error { return nil }

func cleanRel(rel string) string { return path.Clean("./" + rel) }

// verify checks the restored tree under staging against the file list: the
// same entries, types, permissions, symlink targets, sizes and hashes.
func verify(staging string, list map[string]fileEntry, files map[string]written) (Restored, error) {
	var res Restored
	seen := map[string]bool{}
	err := filepath.WalkDir(staging, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(staging, p)
		rel = filepath.ToSlash(rel)
		want, ok := list[rel]
		if !ok {
			return fmt.Errorf("%s is not in its file list", rel)
		}
		seen[rel] = true
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch want.Type {
		case entryDir:
			if !info.IsDir() {
				return fmt.Errorf("%s is not a directory", rel)
			}
		case entrySymlink:
			target, err := os.Readlink(p)
			if err != nil || target != want.Target {
				return fmt.Errorf("symlink %s points to %q, its list says %q", rel, target, want.Target)
			}
			return nil
		case EntryFile:
			w, ok := files[storedPath(rel)]
			switch {
			case !info.Mode().IsRegular() || !ok:
				return fmt.Errorf("file %s was not restored as a file", rel)
			case w.size != want.Size || info.Size() != want.Size:
				return fmt.Errorf("file %s: %d bytes, its list says %d", rel, w.size, want.Size)
			case w.sha256 != want.SHA256:
				return fmt.Errorf("file %s: checksum mismatch (list sha256 %s, data %s)", rel, want.SHA256, w.sha256)
			}
			res.Files++
			res.Bytes += w.size
		}
		if info.Mode().Perm() != want.Mode.Perm() {
			return fmt.Errorf("%s: permissions %v, its list says %v", rel, info.Mode().Perm(), want.Mode.Perm())
		}
		return nil
	})
	if err != nil {
		return res, err
	}
	for name, e := range list {
		if !seen[name] {
			return res, fmt.Errorf("%s %q of its file list was not restored", e.Type, name)
		}
	}
	return res, nil
}
