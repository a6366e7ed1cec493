package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	kopiafs "github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/fs/virtualfs"
	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/snapshot"
	"github.com/kopia/kopia/snapshot/policy"
	"github.com/kopia/kopia/snapshot/snapshotfs"
	"github.com/kopia/kopia/snapshot/upload"

	"recoveryvault/workflows/protocol"
)

// Point is what a backup stored.
type Point struct {
	// SizeBytes is the logical size of the tree's files.
	SizeBytes int64
	// NewBytes is what this point added to the store, after deduplication
	// and compression.
	NewBytes int64
	// SHA256 is the hash of the point's file list: its content hash.
	SHA256 string
	Files  int
	// Skipped lists special files (sockets, devices, pipes) not backed up.
	Skipped []string
	// Unhidden are the item's objects someone had hidden under delete
	// markers, which the store removed.
	Unhidden []string
	// Change is what changed against the point before; nil for the first.
	Change *protocol.Change
	// Since is what changed against the point CompareWith named, file by
	// file: a file changed in two backups counts once.
	Since *protocol.Change
	// Fresh says the backup read every file, and wrote anew what a
	// verification had found damaged, where the source still holds it.
	Fresh bool
}

// Labels of a recovery point's snapshot.
const (
	labelPoint  = "tag:recovery-point"
	labelSHA256 = "tag:content-sha256"
	labelSize   = "tag:size"
	labelNew    = "tag:new-bytes"
	labelFiles  = "tag:files"
	labelChange = "tag:change"
)

// policyTree is how every point is taken: file data compressed with zstd
// (as restic compresses), each file read once from start to end so it can
// be hashed as it is read, every error fatal rather than a partial point.
var policyTree = func() *policy.Tree {
	p := *policy.DefaultPolicy
	p.CompressionPolicy = policy.CompressionPolicy{CompressorName: "zstd"}
	p.MetadataCompressionPolicy = policy.MetadataCompressionPolicy{CompressorName: "zstd-fastest"}
	never := policy.OptionalInt64(-1)
	p.UploadPolicy.ParallelUploadAboveSize = &never
	p.FilesPolicy = policy.FilesPolicy{}
	no := policy.OptionalBool(false)
	p.ErrorHandlingPolicy = policy.ErrorHandlingPolicy{IgnoreFileErrors: &no, IgnoreDirectoryErrors: &no}
	return policy.BuildTree(nil, &p)
}()

// Backup takes recovery point id of the tree under source into the item's
// repository. Files unchanged since the item's last point (same size,
// time, mode and owner) are not read again; one whose inode changed since
// is hashed, and read after all if its bytes differ. Objects written are locked
// until lockUntil where the store locks. Called again with the same id
// after a success, it returns the point already taken, so a retried
// activity makes no duplicate.
func (s *Store) Backup(ctx context.Context, vaultID, itemID, id, source string, lockUntil time.Time, progress Progress, options ...BackupOption) (Point, error) {
	var opts backupOptions
	for _, o := range options {
		o(&opts)
	}
	if err := checkNames(vaultID, itemID, id); err != nil {
		return Point{}, err
	}
	// A source given through a symlink that stays inside its root is
	// backed up as the tree it points to; walking the link itself would
	// record one symlink and no data. Symlinks inside the tree are kept as
	// symlinks, never followed.
	c, err := confine(s.opts.SourceRoots, source, "source", SourceRootFlag)
	if err != nil {
		return Point{}, fmt.Errorf("%w: %v", ErrSourceMissing, err)
	}
	defer c.root.Close()
	if err := s.checkPrivate(c.real, "source"); err != nil {
		return Point{}, fmt.Errorf("%w: %v", ErrSourceMissing, err)
	}
	// Opened once, inside the root, and read only through that handle.
	dir, err := c.root.OpenRoot(c.rel)
	if err != nil {
		return Point{}, fmt.Errorf("%w: source path %s is not a directory the worker can read: create it or protect the item with the right sourcePath", ErrSourceMissing, source)
	}
	if err := s.checkOpened(c, dir, "source"); err != nil {
		dir.Close()
		return Point{}, fmt.Errorf("%w: %v", ErrSourceMissing, err)
	}
	host, local, err := hostTreeOn(dir, filepath.Base(c.real))
	if err != nil {
		return Point{}, fmt.Errorf("%w: source path %s cannot be read: %v", ErrSourceMissing, source, err)
	}
	defer host.Close()
	defer s.lockItem(vaultID, itemID)()
	// What someone hid under delete markers is brought back first, so
	// the backup does not store again what the item has.
	unhidden, err := s.unhide(ctx, vaultID, itemID)
	if err != nil {
		return Point{}, err
	}
	r, err := s.open(ctx, vaultID, itemID, lockUntil, true)
	if err != nil {
		return Point{}, err
	}

	src := sourceOf(vaultID, itemID)
	points, err := snapshot.ListSnapshots(ctx, r, src)
	if err != nil {
		return Point{}, fmt.Errorf("list the recovery points of item %s: %w", itemID, err)
	}
	if i := slices.IndexFunc(points, func(m *snapshot.Manifest) bool { return m.Tags[labelPoint] == id }); i >= 0 {
		p := pointOf(points[i])
		p.Unhidden = unhidden
		return p, nil
	}
	// Damage a verification recorded makes this backup read every file,
	// so that nothing is deduplicated onto it.
	damaged, err := damageRecords(ctx, r)
	if err != nil {
		return Point{}, fmt.Errorf("read the damage verifications recorded: %w", err)
	}
	var previous []*snapshot.Manifest
	var since previousPoint
	var lastID string
	if len(points) > 0 {
		last := slices.MaxFunc(points, func(a, b *snapshot.Manifest) int { return a.StartTime.ToTime().Compare(b.StartTime.ToTime()) })
		if len(damaged) == 0 {
			previous = []*snapshot.Manifest{last}
		}
		lastID = last.Tags[labelPoint]
		since.list, _ = listOf(ctx, r, vaultID, itemID, lastID)
		since.started = last.StartTime.ToTime()
		if since.list == nil {
			// Without it no kept file can be checked: every file is read
			// again, slower and never wrong.
			previous = nil
		}
	}

	var read atomic.Int64
	b := &backupRun{r: r, id: id, source: source, vaultID: vaultID, itemID: itemID, lastID: lastID, src: src,
		root: host.root, local: local, since: since, damaged: damaged, unhidden: unhidden, opts: opts,
		read: func(n int64) {
			if v := read.Add(n); progress != nil {
				progress(v)
			}
		}}
	point, err := b.take(ctx, previous)
	if errors.Is(err, errStale) {
		// A file changed under a size and times kept as they were: kopia
		// kept its old bytes, so every file is read.
		point, err = b.take(ctx, nil)
	}
	return point, err
}

// backupRun is one backup's repository, source and last point.
type backupRun struct {
	r                                   repo.DirectRepository
	id, source, vaultID, itemID, lastID string
	src                                 snapshot.SourceInfo
	root                                *os.Root
	local                               kopiafs.Directory
	since                               previousPoint
	damaged                             []damageRecord
	unhidden                            []string
	opts                                backupOptions
	read                                func(int64)
}

// take writes the recovery point in one write session: kopia reads what
// changed since previous, or every file without it.
func (b *backupRun) take(ctx context.Context, previous []*snapshot.Manifest) (Point, error) {
	r, id, source, vaultID, itemID, damaged, opts := b.r, b.id, b.source, b.vaultID, b.itemID, b.damaged, b.opts
	tree := newSourceTree(!opts.unmeasured, b.read)
	wrapped := tree.wrap(b.local, ".").(kopiafs.Directory)
	previousList := b.since.list

	var point Point
	var uploaded atomic.Int64
	err := repo.DirectWriteSession(ctx, r, repo.WriteSessionOptions{
		Purpose:  "recovery point " + id,
		OnUpload: func(n int64) { uploaded.Add(n) },
	}, func(ctx context.Context, w repo.DirectRepositoryWriter) error {
		if err := forgetReproduced(ctx, w, b.root, damaged); err != nil {
			return fmt.Errorf("forget the damaged contents a verification found: %w", err)
		}
		man, err := newUploader(w).Upload(ctx, wrapped, policyTree, b.src, previous...)
		if err != nil {
			return named(fmt.Sprintf("back up %s: a file or directory could not be read", source), err)
		}
		if man.IncompleteReason != "" || man.Stats.ErrorCount > 0 {
			return fmt.Errorf("back up %s: %d files or directories could not be read (%s); nothing was kept", source, man.Stats.ErrorCount, man.IncompleteReason)
		}
		entries, err := tree.complete(ctx, b.root, b.since, len(previous) > 0, time.Now())
		if err != nil {
			return err
		}
		list, sum, err := encodeList(entries)
		if err != nil {
			return err
		}
		point = Point{SHA256: sum, Skipped: tree.skipped, Unhidden: b.unhidden}
		if previousList != nil && !opts.unmeasured {
			point.Change = measure(previousList, entries)
			point.Since = measureSince(ctx, r, vaultID, itemID, opts.compareWith, b.lastID, entries, point.Change)
		}
		for _, e := range entries {
			if e.Type == EntryFile {
				point.Files++
				point.SizeBytes += e.Size
			}
		}
		// The packs written so far are counted once flushed: read before,
		// the count misses every pack still open.
		if err := w.Flush(ctx); err != nil {
			return err
		}
		point.NewBytes = uploaded.Load()
		man.Description = "recovery point " + id
		man.Tags = map[string]string{
			labelPoint: id, labelSHA256: sum,
			labelSize: strconv.FormatInt(point.SizeBytes, 10), labelNew: strconv.FormatInt(point.NewBytes, 10),
			labelFiles: strconv.Itoa(point.Files),
		}
		if point.Change != nil {
			// Kept with the point, so that a retried backup answers it too.
			data, _ := json.Marshal(point.Change)
			man.Tags[labelChange] = string(data)
		}
		if _, err := snapshot.SaveSnapshot(ctx, w, man); err != nil {
			return err
		}
		if err := saveList(ctx, w, vaultID, itemID, id, list); err != nil {
			return err
		}
		point.Fresh = len(damaged) > 0
		return dropRecords(ctx, w, damaged)
	})
	if err != nil {
		return Point{}, err
	}
	return point, nil
}

// measureSince is the change against point id, when it is still there:
// the change already measured when id is the last point.
func measureSince(ctx context.Context, r repo.Repository, vaultID, itemID, id, lastID string, entries []*fileEntry, change *protocol.Change) *protocol.Change {
	switch {
	case id == "":
		return nil
	case id == lastID:
		return change
	}
	list, err := listOf(ctx, r, vaultID, itemID, id)
	if err != nil {
		return nil
	}
	return measure(list, entries)
}

// BackupOption changes how a backup is taken.
type BackupOption func(*backupOptions)

type backupOptions struct {
	unmeasured  bool
	compareWith string
}

// CompareWith measures the change against point id too (Point.Since).
func CompareWith(id string) BackupOption { return func(o *backupOptions) { o.compareWith = id } }

// Unmeasured leaves out the measurement of what changed: the benchmark's
// baseline.
func Unmeasured() BackupOption { return func(o *backupOptions) { o.unmeasured = true } }

// previousPoint is the item's last point, which a backup reads changes
// against: its file list and when it was started.
type previousPoint struct {
	list    map[string]fileEntry
	started time.Time
}

// changeTimeMargin covers coarse file-system clocks: a file whose inode
// changed that close before the last point's start is hashed again.
const changeTimeMargin = 2 * time.Second

// untouched says the kernel saw e's inode unchanged since the last point
// started; a start in the future (a clock set back) vouches for nothing.
func (last previousPoint) untouched(e *fileEntry, now time.Time) bool {
	return e.changed.IsZero() || (!last.started.After(now) && e.changed.Before(last.started.Add(-changeTimeMargin)))
}

// errStale: kopia kept an entry as the last point has it because its
// size, times and mode were as before, but the entry is not.
var errStale = errors.New("a file changed without its size, time or mode changing")

// complete gives every entry its hash: the one computed as kopia read the
// file; for a file kopia kept, the last point's if its inode is untouched
// since, or else one computed now, which must be the last point's
// (errStale). cached says kopia was given the last point to keep from.
func (t *sourceTree) complete(ctx context.Context, root *os.Root, last previousPoint, cached bool, now time.Time) ([]*fileEntry, error) {
	entries := make([]*fileEntry, 0, len(t.entries))
	for _, e := range t.entries {
		entries = append(entries, e)
		p, ok := last.list[e.name()]
		if cached && e.Type == entrySymlink && ok && p.Type == entrySymlink && p.ModTime.Equal(e.ModTime) && p.Target != e.Target {
			// Kopia keeps a link of the same length and time as it was.
			return nil, errStale
		}
		if e.Type != EntryFile || e.SHA256 != "" {
			continue
		}
		kept := ok && p.Type == EntryFile && p.Size == e.Size && p.ModTime.Equal(e.ModTime) && p.Mode == e.Mode
		if kept && last.untouched(e, now) {
			e.SHA256 = p.SHA256
			continue
		}
		sum, size, err := hashFile(ctx, root, filepath.FromSlash(e.name()), t.read)
		if err != nil {
			return nil, named("a file could not be read to hash it", fmt.Errorf("hash %s: %w", e.name(), err))
		}
		if cached && (!kept || sum != p.SHA256) {
			// Kopia kept bytes this point would not vouch for.
			return nil, errStale
		}
		e.SHA256, e.Size = sum, size
	}
	return entries, nil
}

// newUploader uploads failing at the first unreadable entry, and never
// checkpoints: a checkpoint would save a point of no recovery point's name
// and apply kopia's own retention to the item's points, which only the
// workflow expires.
func newUploader(w repo.RepositoryWriter) *upload.Uploader {
	u := upload.NewUploader(w)
	u.FailFast = true
	u.CheckpointInterval = 0
	return u
}

// hashFile hashes a file of the source, telling read of what it reads.
func hashFile(ctx context.Context, root *os.Root, rel string, read func(int64)) (string, int64, error) {
	f, err := root.Open(rel)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx, f, read})
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// ctxReader stops a long read when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	// read is told of every read, for progress; it may be nil.
	read func(int64)
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	if c.read != nil {
		c.read(int64(n))
	}
	return n, err
}

// The file list of a point is a snapshot of its own, of a directory
// holding one file: the repository's garbage collection keeps what
// snapshots refer to, and a point's two snapshots go together.
const listName = "files.jsonl"

func listSource(vaultID, itemID string) snapshot.SourceInfo {
	src := sourceOf(vaultID, itemID)
	src.Path += "/file-list"
	return src
}

func saveList(ctx context.Context, w repo.RepositoryWriter, vaultID, itemID, id string, list []byte) error {
	dir := virtualfs.NewStaticDirectory("file-list", []kopiafs.Entry{
		virtualfs.StreamingFileFromReader(listName, io.NopCloser(bytes.NewReader(list))),
	})
	man, err := newUploader(w).Upload(ctx, dir, policyTree, listSource(vaultID, itemID))
	if err != nil {
		return fmt.Errorf("store the file list: %w", err)
	}
	man.Description = "file list of recovery point " + id
	man.Tags = map[string]string{labelPoint: id}
	_, err = snapshot.SaveSnapshot(ctx, w, man)
	return err
}

// readList reads the file list of point id.
func readList(ctx context.Context, r repo.Repository, vaultID, itemID, id string) ([]byte, error) {
	src := listSource(vaultID, itemID)
	ids, err := snapshot.ListSnapshotManifests(ctx, r, &src, map[string]string{labelPoint: id})
	if err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("recovery point %s has no file list", id)
	}
	man, err := snapshot.LoadSnapshot(ctx, r, ids[0])
	if err != nil {
		return nil, err
	}
	root, err := snapshotfs.SnapshotRoot(r, man)
	if err != nil {
		return nil, err
	}
	dir, ok := root.(kopiafs.Directory)
	if !ok {
		return nil, fmt.Errorf("the file list of recovery point %s is not a directory's", id)
	}
	e, err := dir.Child(ctx, listName)
	if err != nil {
		return nil, err
	}
	f, ok := e.(kopiafs.File)
	if !ok {
		return nil, fmt.Errorf("the file list of recovery point %s is not a file", id)
	}
	rd, err := f.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(rd)
}

// listOf reads and decodes the file list of point id.
func listOf(ctx context.Context, r repo.Repository, vaultID, itemID, id string) (map[string]fileEntry, error) {
	data, err := readList(ctx, r, vaultID, itemID, id)
	if err != nil {
		return nil, err
	}
	return decodeList(data)
}

// pointOf reads what a point's snapshot says of it.
func pointOf(m *snapshot.Manifest) Point {
	p := Point{SHA256: m.Tags[labelSHA256]}
	p.SizeBytes, _ = strconv.ParseInt(m.Tags[labelSize], 10, 64)
	p.NewBytes, _ = strconv.ParseInt(m.Tags[labelNew], 10, 64)
	p.Files, _ = strconv.Atoi(m.Tags[labelFiles])
	if data := m.Tags[labelChange]; data != "" {
		var c protocol.Change
		if json.Unmarshal([]byte(data), &c) == nil {
			p.Change = &c
		}
	}
	return p
}
