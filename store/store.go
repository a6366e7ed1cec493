// Package store keeps an item's recovery points on the worker's disk: one
// compressed archive and a manifest of checksums per point, written once,
// verified on every restore.
package store

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
)

// Store errors that no retry can fix.
var (
	ErrSourceMissing        = errors.New("source missing")
	ErrUnknownRecoveryPoint = errors.New("unknown recovery point")
	ErrTargetNotEmpty       = errors.New("target not empty")
	ErrCorrupted            = errors.New("recovery point corrupted")
	ErrInvalidInput         = errors.New("invalid input")
)

const (
	archiveName  = "data.tar.zst"
	manifestName = "manifest.json"
	tmpPrefix    = ".tmp-"
)

// Manifest is written beside each archive; it is what a restore verifies.
type Manifest struct {
	RecoveryPointID string          `json:"recoveryPointId"`
	SourcePath      string          `json:"sourcePath"`
	WrittenAt       time.Time       `json:"writtenAt"`
	ArchiveSHA256   string          `json:"archiveSha256"`
	ArchiveSize     int64           `json:"archiveSize"`
	Entries         []ManifestEntry `json:"entries"`
	// Skipped lists special files (sockets, devices, pipes) not backed up.
	Skipped []string `json:"skipped,omitempty"`
}

// ManifestEntry is one file, directory or symlink of the backed-up tree.
type ManifestEntry struct {
	Path string `json:"path"`
	// RawPath holds the exact bytes of a name that is not valid UTF-8, which
	// JSON cannot carry in Path.
	RawPath []byte      `json:"rawPath,omitempty"`
	Type    string      `json:"type"`
	Mode    fs.FileMode `json:"mode"`
	Size    int64       `json:"size,omitempty"`
	SHA256  string      `json:"sha256,omitempty"`
	Target  string      `json:"target,omitempty"`
	ModTime time.Time   `json:"modTime"`
}

// name is the entry's exact path as in the archive.
func (e ManifestEntry) name() string {
	if len(e.RawPath) > 0 {
		return string(e.RawPath)
	}
	return e.Path
}

const (
	entryDir     = "dir"
	EntryFile    = "file"
	entrySymlink = "symlink"
)

// Store keeps recovery points under Root/<vaultId>/<itemId>/<recoveryPointId>.
// A recovery point is written under a temporary name and renamed into place,
// so a reader never sees a partial one, and it is never modified afterwards.
type Store struct {
	Root string
}

// Progress is told the bytes handled so far; activities heartbeat with it.
type Progress func(bytes int64)

func (s *Store) itemDir(vaultID, itemID string) string {
	return filepath.Join(s.Root, vaultID, itemID)
}

func checkName(kind, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, tmpPrefix) {
		return fmt.Errorf("%w: %s %q cannot name a directory of the store", ErrInvalidInput, kind, name)
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

// Backup copies the tree under source into recovery point id and returns its
// manifest. Called again with the same id after a success, it returns the
// recovery point already written, so a retried activity makes no duplicate.
func (s *Store) Backup(ctx context.Context, vaultID, itemID, id, source string, progress Progress) (Manifest, error) {
	if err := checkNames(vaultID, itemID, id); err != nil {
		return Manifest{}, err
	}
	// A source given through a symlink is backed up as the tree it points
	// to; walking the link itself would record one symlink and no data.
	root, err := filepath.EvalSymlinks(source)
	info, statErr := os.Stat(root)
	if err != nil || statErr != nil || !info.IsDir() {
		return Manifest{}, fmt.Errorf("%w: source path %s is not a directory the worker can read: create it or protect the item with the right sourcePath", ErrSourceMissing, source)
	}
	dir := s.itemDir(vaultID, itemID)
	final := filepath.Join(dir, id)
	if m, err := readManifest(final); err == nil {
		return m, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Manifest{}, fmt.Errorf("create item directory: %w", err)
	}
	tmp, err := os.MkdirTemp(dir, tmpPrefix+id+"-")
	if err != nil {
		return Manifest{}, fmt.Errorf("create temporary recovery point: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = os.RemoveAll(tmp)
		}
	}()

	m := Manifest{RecoveryPointID: id, SourcePath: source, WrittenAt: time.Now().UTC()}
	if err := writeArchive(ctx, root, filepath.Join(tmp, archiveName), &m, progress); err != nil {
		return Manifest{}, err
	}
	if err := writeFileSynced(filepath.Join(tmp, manifestName), m); err != nil {
		return Manifest{}, err
	}
	if err := syncDir(tmp); err != nil {
		return Manifest{}, err
	}
	if err := os.Rename(tmp, final); err != nil {
		// Another attempt of the same activity got there first: keep its copy.
		if existing, rerr := readManifest(final); rerr == nil {
			return existing, nil
		}
		return Manifest{}, fmt.Errorf("commit recovery point %s: %w", id, err)
	}
	committed = true
	if err := syncDir(dir); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

func writeArchive(ctx context.Context, source, dest string, m *Manifest, progress Progress) error {
	f, err := os.OpenFile(dest, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o444)
	if err != nil {
		return fmt.Errorf("create archive: %w", err)
	}
	defer f.Close()
	archiveHash := sha256.New()
	counted := &countingWriter{w: io.MultiWriter(f, archiveHash)}
	zw, err := zstd.NewWriter(counted)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	pr := &progressCounter{progress: progress}
	err = filepath.WalkDir(source, func(p string, d fs.DirEntry, walkErr error) error {
		if walkErr != nil {
			return fmt.Errorf("read source %s: %w", p, walkErr)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(source, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("read source %s: %w", p, err)
		}
		e := ManifestEntry{Path: rel, Mode: info.Mode().Perm(), ModTime: info.ModTime().UTC()}
		if !utf8.ValidString(rel) {
			e.RawPath = []byte(rel)
		}
		hdr := &tar.Header{Name: rel, Mode: int64(info.Mode().Perm()), ModTime: info.ModTime(), Format: tar.FormatPAX}
		switch {
		case info.IsDir():
			e.Type, hdr.Typeflag = entryDir, tar.TypeDir
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("read symlink %s: %w", p, err)
			}
			e.Type, e.Target = entrySymlink, target
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		case info.Mode().IsRegular():
			e.Type, e.Size = EntryFile, info.Size()
			hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
		default:
			m.Skipped = append(m.Skipped, rel)
			return nil
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if e.Type == EntryFile {
			sum, err := copyFile(ctx, tw, p, e.Size, pr)
			if err != nil {
				return err
			}
			e.SHA256 = sum
		}
		m.Entries = append(m.Entries, e)
		pr.report()
		return nil
	})
	if err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync archive: %w", err)
	}
	m.ArchiveSHA256 = hex.EncodeToString(archiveHash.Sum(nil))
	m.ArchiveSize = counted.n
	return f.Close()
}

// copyFile copies exactly size bytes of a source file, so a file that grows
// or shrinks during the backup fails it (to be retried) instead of being
// recorded with a checksum that does not match the archive.
func copyFile(ctx context.Context, w io.Writer, p string, size int64, pr *progressCounter) (string, error) {
	src, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("read source file %s: %w", p, err)
	}
	defer src.Close()
	h := sha256.New()
	n, err := io.CopyN(io.MultiWriter(w, h), ctxReader{ctx, src, pr}, size)
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("read source file %s (%d of %d bytes): %w; was it changed during the backup?", p, n, size, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ctxReader stops a long copy as soon as its activity is cancelled, and
// counts what it reads so a large file keeps the heartbeat going.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	pr  *progressCounter
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.pr.add(int64(n))
	return n, err
}

// progressEvery is how many bytes pass between two progress reports.
const progressEvery = 1 << 20

// progressCounter reports bytes handled every progressEvery bytes, so a
// single large file or archive never goes quiet long enough to look dead.
type progressCounter struct {
	progress Progress
	done     int64
	last     int64
}

func (p *progressCounter) add(n int64) {
	p.done += n
	if p.done-p.last >= progressEvery {
		p.report()
	}
}

func (p *progressCounter) report() {
	p.last = p.done
	if p.progress != nil {
		p.progress(p.done)
	}
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func writeFileSynced(p string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o444)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(p string) error {
	d, err := os.Open(p)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", p, err)
	}
	return nil
}

func readManifest(rpDir string) (Manifest, error) {
	var m Manifest
	data, err := os.ReadFile(filepath.Join(rpDir, manifestName))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("%w: manifest of %s does not parse: %v", ErrCorrupted, filepath.Base(rpDir), err)
	}
	return m, nil
}

// Restore writes recovery point id under target, which must be absent or an
// empty directory. Everything is extracted into a staging directory beside
// target and checked against the manifest, and against expectedSHA256 (the
// checksum the workflow recorded at backup time) when given; only a fully
// verified tree is renamed into place, so a tampered point never lands.
func (s *Store) Restore(ctx context.Context, vaultID, itemID, id, expectedSHA256, target string, progress Progress) (Manifest, error) {
	if err := checkNames(vaultID, itemID, id); err != nil {
		return Manifest{}, err
	}
	if !filepath.IsAbs(target) {
		return Manifest{}, fmt.Errorf("%w: target path %q is not absolute", ErrInvalidInput, target)
	}
	target = filepath.Clean(target)
	if inside(s.Root, target) {
		return Manifest{}, fmt.Errorf("%w: target %s is inside the recovery-point store %s: restore somewhere else", ErrInvalidInput, target, s.Root)
	}
	rpDir := filepath.Join(s.itemDir(vaultID, itemID), id)
	if _, err := os.Stat(rpDir); err != nil {
		return Manifest{}, fmt.Errorf("%w: recovery point %s of item %s is not in the store", ErrUnknownRecoveryPoint, id, itemID)
	}
	m, err := readManifest(rpDir)
	if err != nil {
		return Manifest{}, fmt.Errorf("%w: recovery point %s has no readable manifest: %v", ErrCorrupted, id, err)
	}
	if expectedSHA256 != "" && m.ArchiveSHA256 != expectedSHA256 {
		return Manifest{}, fmt.Errorf("%w: recovery point %s: manifest says archive sha256 %s, the workflow recorded %s", ErrCorrupted, id, m.ArchiveSHA256, expectedSHA256)
	}
	if err := checkTargetEmpty(target); err != nil {
		return Manifest{}, err
	}
	parent := filepath.Dir(target)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return Manifest{}, fmt.Errorf("create parent of target %s: %w", target, err)
	}
	staging, err := os.MkdirTemp(parent, ".restore-"+id+"-")
	if err != nil {
		return Manifest{}, fmt.Errorf("create staging directory beside %s: %w", target, err)
	}
	defer os.RemoveAll(staging)

	if err := extract(ctx, filepath.Join(rpDir, archiveName), staging, m, progress); err != nil {
		return Manifest{}, err
	}
	// Checked again: something may have written to target meanwhile.
	if err := checkTargetEmpty(target); err != nil {
		return Manifest{}, err
	}
	// rename(2) replaces an empty directory atomically; os.Rename refuses to.
	if err := syscall.Rename(staging, target); err != nil {
		return Manifest{}, fmt.Errorf("move restored tree into %s: %w", target, err)
	}
	if err := syncDir(parent); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// inside is true when p, once its symlinks are resolved, is root or under
// it; a path that does not exist yet is resolved through its deepest
// existing ancestor.
func inside(root, p string) bool {
	r, err := resolveExisting(root)
	if err != nil {
		return false
	}
	q, err := resolveExisting(p)
	if err != nil {
		return true // unresolvable: refuse rather than risk the store
	}
	return q == r || strings.HasPrefix(q, r+string(filepath.Separator))
}

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

func extract(ctx context.Context, archive, staging string, m Manifest, progress Progress) error {
	id := m.RecoveryPointID
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: recovery point %s: %s", ErrCorrupted, id, fmt.Sprintf(format, args...))
	}
	want := make(map[string]ManifestEntry, len(m.Entries))
	for _, e := range m.Entries {
		want[e.name()] = e
	}
	pr := &progressCounter{progress: progress}
	sum, err := fileSHA256(ctx, archive, pr)
	if err != nil {
		return corrupt("archive cannot be read: %v", err)
	}
	if sum != m.ArchiveSHA256 {
		return corrupt("archive checksum mismatch (manifest sha256 %s, data %s)", m.ArchiveSHA256, sum)
	}
	f, err := os.Open(archive)
	if err != nil {
		return corrupt("archive cannot be opened: %v", err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		return corrupt("archive is not zstd: %v", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)

	// Only directories this extraction created may hold entries, so no
	// entry can be written through a symlink or outside staging.
	dirs := map[string]bool{".": true}
	seen := map[string]bool{}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return corrupt("archive unreadable: %v", err)
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		if name != path.Clean(name) || path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return corrupt("entry %q escapes the recovery point", name)
		}
		e, ok := want[name]
		if !ok || seen[name] {
			return corrupt("entry %q is not in the manifest", name)
		}
		seen[name] = true
		if name != "." && !dirs[path.Dir(name)] {
			return corrupt("entry %q is not under a directory of the recovery point", name)
		}
		dest := filepath.Join(staging, filepath.FromSlash(name))
		switch hdr.Typeflag {
		case tar.TypeDir:
			if e.Type != entryDir {
				return corrupt("entry %q is a directory in the archive, a %s in the manifest", name, e.Type)
			}
			if name != "." {
				if err := os.Mkdir(dest, 0o700); err != nil {
					return fmt.Errorf("restore directory %s: %w", name, err)
				}
			}
			dirs[name] = true
		case tar.TypeSymlink:
			if e.Type != entrySymlink || hdr.Linkname != e.Target {
				return corrupt("symlink %q does not match the manifest", name)
			}
			if err := os.Symlink(hdr.Linkname, dest); err != nil {
				return fmt.Errorf("restore symlink %s: %w", name, err)
			}
		case tar.TypeReg:
			if e.Type != EntryFile || hdr.Size != e.Size {
				return corrupt("file %q: size %d in the archive, %d in the manifest", name, hdr.Size, e.Size)
			}
			sum, err := writeRestoredFile(dest, ctxReader{ctx, tr, pr}, e.Mode)
			if err != nil {
				return corrupt("file %q cannot be read back: %v", name, err)
			}
			if sum != e.SHA256 {
				return corrupt("file %q: checksum mismatch (manifest sha256 %s, data %s)", name, e.SHA256, sum)
			}
			pr.report()
		default:
			return corrupt("entry %q has an unexpected type", name)
		}
	}
	for _, e := range m.Entries {
		if !seen[e.name()] {
			return corrupt("%s %q of the manifest is missing from the archive", e.Type, e.Path)
		}
	}
	return applyModes(staging, m.Entries)
}

func fileSHA256(ctx context.Context, p string, pr *progressCounter) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f, pr}); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func writeRestoredFile(dest string, r io.Reader, mode fs.FileMode) (string, error) {
	f, err := os.OpenFile(dest, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), r); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Chmod(mode); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), f.Close()
}

// applyModes sets permissions and times once everything is written:
// directories last and deepest first, since a read-only directory would
// refuse its own contents.
func applyModes(staging string, entries []ManifestEntry) error {
	var dirs []ManifestEntry
	for _, e := range entries {
		p := filepath.Join(staging, filepath.FromSlash(e.name()))
		switch e.Type {
		case EntryFile:
			if err := os.Chtimes(p, e.ModTime, e.ModTime); err != nil {
				return err
			}
		case entrySymlink:
			continue
		case entryDir:
			dirs = append(dirs, e)
		}
	}
	slices.SortFunc(dirs, func(a, b ManifestEntry) int { return strings.Count(b.Path, "/") - strings.Count(a.Path, "/") })
	for _, e := range dirs {
		p := filepath.Join(staging, filepath.FromSlash(e.name()))
		if err := os.Chmod(p, e.Mode); err != nil {
			return err
		}
		if err := os.Chtimes(p, e.ModTime, e.ModTime); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes recovery points of an item. Removing one that is already
// gone succeeds, so a retried garbage collection is harmless.
func (s *Store) Delete(vaultID, itemID string, ids []string, progress Progress) (int, error) {
	if err := checkNames(vaultID, itemID, ids...); err != nil {
		return 0, err
	}
	dir := s.itemDir(vaultID, itemID)
	removed := 0
	for _, id := range ids {
		p := filepath.Join(dir, id)
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return removed, fmt.Errorf("remove recovery point %s: %w", id, err)
		}
		removed++
		if progress != nil {
			progress(int64(removed))
		}
	}
	if removed > 0 {
		return removed, syncDir(dir)
	}
	return removed, nil
}

// Purge destroys every byte the store holds for an item, including anything
// an interrupted backup left behind. Purging an absent item succeeds.
func (s *Store) Purge(vaultID, itemID string, progress Progress) error {
	if err := checkNames(vaultID, itemID); err != nil {
		return err
	}
	dir := s.itemDir(vaultID, itemID)
	// One recovery point at a time, so a long purge shows it is alive.
	entries, _ := os.ReadDir(dir)
	for i, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("purge item %s: %w", itemID, err)
		}
		if progress != nil {
			progress(int64(i + 1))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("purge item %s: %w", itemID, err)
	}
	if parent := filepath.Dir(dir); dirExists(parent) {
		return syncDir(parent)
	}
	return nil
}

// List returns the IDs of the committed recovery points of an item.
func (s *Store) List(vaultID, itemID string) ([]string, error) {
	entries, err := os.ReadDir(s.itemDir(vaultID, itemID))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), tmpPrefix) {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

func dirExists(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.IsDir()
}
