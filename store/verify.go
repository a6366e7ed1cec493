package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	kopiafs "github.com/kopia/kopia/fs"
	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/blob"
	"github.com/kopia/kopia/repo/content"
	"github.com/kopia/kopia/repo/manifest"
	"github.com/kopia/kopia/repo/object"
	"github.com/kopia/kopia/snapshot/snapshotfs"
)

// ErrVerifyFailed is a recovery point some of whose files did not read
// back as their backup recorded them.
var ErrVerifyFailed = errors.New("verification failed")

// Verified is what a verification read back.
type Verified struct {
	Files int
	Bytes int64
}

// Verify reads every file of recovery point id back from the store and
// checks it against the SHA-256 its backup recorded, writing nothing to the
// host. A file that does not read back is counted, never named: the error
// says how many. The contents that could not be read are recorded in the
// repository, so that the item's next backup, taken Fresh, stores them
// again and the points that share them heal. A store that cannot be reached
// is no damage: that error is returned as it is, to try again.
func (s *Store) Verify(ctx context.Context, vaultID, itemID, id, wantSHA256 string, progress Progress) (Verified, error) {
	if err := checkNames(vaultID, itemID, id); err != nil {
		return Verified{}, err
	}
	defer s.lockItem(vaultID, itemID)()
	// Objects someone hid under delete markers are brought back, as a
	// restore would: hidden is tampering, not damage.
	if _, err := s.unhide(ctx, vaultID, itemID); err != nil {
		return Verified{}, err
	}
	r, man, list, err := s.openPoint(ctx, vaultID, itemID, id, wantSHA256)
	if err != nil {
		return Verified{}, err
	}
	root, err := snapshotfs.SnapshotRoot(r, man)
	if err != nil {
		return Verified{}, corrupted(id, "its root cannot be read: %v", err)
	}
	names := make([]string, 0, len(list))
	for name, e := range list {
		if e.Type == EntryFile {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var v Verified
	var damaged []damagedFile
	var objects []object.ID
	failed := 0
	for _, name := range names {
		n, oid, err := readBack(ctx, root, name, list[name])
		if ctx.Err() != nil {
			return Verified{}, ctx.Err()
		}
		v.Bytes += n
		if progress != nil {
			progress(v.Bytes)
		}
		switch {
		case err != nil && !damage(err):
			return Verified{}, fmt.Errorf("recovery point %s could not be read back (the store did not answer, not damage): %w", id, err)
		case err != nil:
			failed++
			if oid != (object.ID{}) {
				damaged = append(damaged, damagedFile{Path: name, SHA256: list[name].SHA256})
				objects = append(objects, oid)
			}
			continue
		}
		v.Files++
	}
	if failed == 0 {
		return v, nil
	}
	recorded, err := recordDamage(ctx, r, damaged, objects)
	if err != nil {
		return v, fmt.Errorf("%w: recovery point %s: %d of %d files do not read back as backed up; recording what cannot be read failed too: %v",
			ErrVerifyFailed, id, failed, len(names), err)
	}
	return v, fmt.Errorf("%w: recovery point %s: %d of %d files do not read back as backed up (%d damaged pieces recorded: the next backup stores them afresh)",
		ErrVerifyFailed, id, failed, len(names), recorded)
}

// damage is a read that failed for what the store holds: missing, or not
// what was written (kopia's contents are authenticated).
func damage(err error) bool {
	return errors.Is(err, errDiffers) || errors.Is(err, kopiafs.ErrEntryNotFound) || errors.Is(err, blob.ErrBlobNotFound) || errors.Is(err, content.ErrContentNotFound) ||
		errors.Is(err, object.ErrObjectNotFound) || strings.Contains(err.Error(), "invalid checksum") || strings.Contains(err.Error(), "decrypt")
}

// errDiffers is a file that read back other than it was backed up.
var errDiffers = errors.New("differs from its backup")

// readBack reads one file of a point and checks its size and SHA-256.
func readBack(ctx context.Context, root kopiafs.Entry, name string, want fileEntry) (int64, object.ID, error) {
	e := root
	for part := range strings.SplitSeq(storedPath(name), "/") {
		dir, ok := e.(kopiafs.Directory)
		if !ok {
			return 0, object.ID{}, fmt.Errorf("%s: a parent %w", path.Dir(name), errDiffers)
		}
		child, err := dir.Child(ctx, part)
		if err != nil {
			// The directory's listing did not read: no backup is sure to
			// write it again byte for byte, so it is not recorded.
			return 0, object.ID{}, err
		}
		e = child
	}
	oid := objectID(e)
	f, ok := e.(kopiafs.File)
	if !ok {
		return 0, oid, fmt.Errorf("%s %w: not a file", name, errDiffers)
	}
	rd, err := f.Open(ctx)
	if err != nil {
		return 0, oid, err
	}
	defer rd.Close()
	h := sha256.New()
	n, err := io.Copy(h, ctxReader{ctx: ctx, r: rd})
	switch {
	case err != nil:
		return n, oid, err
	case n != want.Size || hex.EncodeToString(h.Sum(nil)) != want.SHA256:
		return n, oid, fmt.Errorf("%s %w", name, errDiffers)
	}
	return n, oid, nil
}

func objectID(e kopiafs.Entry) object.ID {
	if h, ok := e.(object.HasObjectID); ok {
		return h.ObjectID()
	}
	return object.ID{}
}

// damagedLabels mark the manifests that list an item's damaged files.
var damagedLabels = map[string]string{"type": "recoveryvault-damaged-files"}

// damagedFile is a file a verification could not read back: its path and
// content as backed up, and which of its pieces could not be read.
type damagedFile struct {
	Path     string       `json:"path"`
	SHA256   string       `json:"sha256"`
	Contents []content.ID `json:"contents"`
}

// damageRecord is one verification's record, as the repository keeps it.
type damageRecord struct {
	id    manifest.ID
	files []damagedFile
}

// recordDamage keeps, in the repository, which pieces of the damaged
// files cannot be read: they hold nothing a restore could use. Readable
// pieces are not listed: other points may need them.
func recordDamage(ctx context.Context, r repo.DirectRepository, damaged []damagedFile, objects []object.ID) (int, error) {
	n := 0
	for i, oid := range objects {
		for _, cid := range contentsOf(ctx, r, oid) {
			if _, err := r.ContentReader().GetContent(ctx, cid); err != nil {
				damaged[i].Contents = append(damaged[i].Contents, cid)
				n++
			}
		}
	}
	err := repo.WriteSession(ctx, r, repo.WriteSessionOptions{Purpose: "record damaged files"},
		func(ctx context.Context, w repo.RepositoryWriter) error {
			_, err := w.PutManifest(ctx, damagedLabels, damaged)
			return err
		})
	return n, err
}

// damageRecords are the damage verifications recorded, not yet mended.
func damageRecords(ctx context.Context, r repo.Repository) ([]damageRecord, error) {
	found, err := r.FindManifests(ctx, damagedLabels)
	if err != nil {
		return nil, err
	}
	var records []damageRecord
	for _, m := range found {
		rec := damageRecord{id: m.ID}
		if _, err := r.GetManifest(ctx, m.ID, &rec.files); err != nil {
			return nil, err
		}
		records = append(records, rec)
	}
	return records, nil
}

// forgetReproduced forgets, within a backup's write session, the damaged
// pieces of every recorded file the source still holds as it was backed
// up: the backup, which reads every file, then writes them anew, and the
// points that share them heal. A piece the source no longer produces is
// left as it is, unreadable: forgotten, it would be one no one writes again
// while points still refer to it, and no collection could pass it.
func forgetReproduced(ctx context.Context, w repo.DirectRepositoryWriter, source *os.Root, records []damageRecord) error {
	for _, rec := range records {
		for _, f := range rec.files {
			sum, _, err := hashFile(ctx, source, filepath.FromSlash(f.Path), nil)
			if err != nil || sum != f.SHA256 {
				continue
			}
			for _, cid := range f.Contents {
				if err := w.ContentManager().DeleteContent(ctx, cid); err != nil && !errors.Is(err, content.ErrContentNotFound) {
					return err
				}
			}
		}
	}
	return nil
}

// dropRecords removes the records a backup has acted on.
func dropRecords(ctx context.Context, w repo.RepositoryWriter, records []damageRecord) error {
	for _, rec := range records {
		if err := w.DeleteManifest(ctx, rec.id); err != nil {
			return err
		}
	}
	return nil
}

// contentsOf are the contents an object is made of, as far as they can be
// told: an index object that cannot be read is itself the damaged one.
func contentsOf(ctx context.Context, r repo.DirectRepository, oid object.ID) []content.ID {
	if cids, err := r.VerifyObject(ctx, oid); err == nil {
		return cids
	}
	if index, ok := oid.IndexObjectID(); ok {
		return contentsOf(ctx, r, index)
	}
	if cid, _, ok := oid.ContentID(); ok {
		return []content.ID{cid}
	}
	return nil
}
