package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kopia/kopia/repo/blob"
	"github.com/minio/minio-go/v7"
)

// On a bucket with object lock the store never deletes what kopia deletes:
// it writes a tombstone beside it and hides it from kopia. A tombstone's
// name carries an HMAC made with a key derived from the repository
// password, which whoever holds only the bucket's credentials lacks. So a
// delete marker in an item's objects is never the store's own: the lock
// removes it and reports it, and the sweep deletes only what a genuine
// tombstone names, once its lock has passed.

// tombstoneDir holds an item's tombstones, "rv-tombstone/<blob ID>.<HMAC>";
// no kopia blob ID begins with "rv-".
const tombstoneDir = "rv-tombstone/"

// tombstoneMACs holds, under a lockKey, the key that signs tombstones.
var tombstoneMACs sync.Map // lockKey -> []byte

// tombstoneKey derives the tombstones' key from the repository password.
func tombstoneKey(password string) []byte {
	k := sha256.Sum256([]byte("recoveryvault tombstone\x00" + password))
	return k[:]
}

// tombstoneName is the tombstone of blob id of the repository under prefix.
func tombstoneName(key []byte, prefix, id string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(prefix + "\x00" + id))
	return tombstoneDir + id + "." + hex.EncodeToString(m.Sum(nil))
}

// buried reads a tombstone's name back: the blob it buries, when its HMAC
// is genuine.
func buried(key []byte, prefix, name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, tombstoneDir)
	i := strings.LastIndexByte(rest, '.')
	if !ok || i < 0 || len(key) == 0 {
		return "", false
	}
	id := rest[:i]
	return id, hmac.Equal([]byte(tombstoneName(key, prefix, id)), []byte(name))
}

// DeleteBlob buries a blob instead of deleting it.
func (s *lockedStorage) DeleteBlob(ctx context.Context, id blob.ID) error {
	key, ok := tombstoneMACs.Load(s.opts.Key)
	if !ok {
		return fmt.Errorf("delete %s: the store holds no key to sign its tombstone", id)
	}
	name := tombstoneName(key.([]byte), s.opts.Prefix, string(id))
	if err := s.PutBlob(ctx, blob.ID(name), blobBytes(nil), blob.PutOptions{}); err != nil {
		return fmt.Errorf("bury %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hidden == nil {
		s.hidden = map[blob.ID]time.Time{}
	}
	s.hidden[id] = time.Now()
	return nil
}

// ListBlobs lists what kopia has not deleted: neither tombstones nor what
// they bury, unless written again since.
func (s *lockedStorage) ListBlobs(ctx context.Context, prefix blob.ID, cb func(blob.Metadata) error) error {
	key, _ := tombstoneMACs.Load(s.opts.Key)
	mac, _ := key.([]byte)
	hidden := map[blob.ID]time.Time{}
	err := s.Storage.ListBlobs(ctx, blob.ID(tombstoneDir)+prefix, func(m blob.Metadata) error {
		if id, ok := buried(mac, s.opts.Prefix, string(m.BlobID)); ok {
			hidden[blob.ID(id)] = m.Timestamp
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	for id, at := range s.hidden {
		if at.After(hidden[id]) {
			hidden[id] = at
		}
	}
	s.hidden = hidden
	s.mu.Unlock()
	return s.Storage.ListBlobs(ctx, prefix, func(m blob.Metadata) error {
		if strings.HasPrefix(string(m.BlobID), "rv-") || s.isHidden(m.BlobID, m.Timestamp) {
			return nil
		}
		return cb(m)
	})
}

// isHidden is true for a blob buried no earlier than it was written (S3
// keeps times to the second).
func (s *lockedStorage) isHidden(id blob.ID, written time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.hidden[id]
	return ok && !at.Before(written.Truncate(time.Second))
}

func (s *lockedStorage) GetBlob(ctx context.Context, id blob.ID, offset, length int64, out blob.OutputBuffer) error {
	if s.buriedHere(id) {
		return blob.ErrBlobNotFound
	}
	return s.Storage.GetBlob(ctx, id, offset, length, out)
}

func (s *lockedStorage) GetMetadata(ctx context.Context, id blob.ID) (blob.Metadata, error) {
	if s.buriedHere(id) {
		return blob.Metadata{}, blob.ErrBlobNotFound
	}
	return s.Storage.GetMetadata(ctx, id)
}

// buriedHere is true for a blob this storage knows buried and not written
// again.
func (s *lockedStorage) buriedHere(id blob.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.hidden[id]
	return ok
}

// Tamper is what a lock found done to an item's objects by someone else.
type Tamper struct {
	// Markers are objects someone hid under a delete marker: the lock
	// removed the markers, so they are current again.
	Markers []string
	// Overwritten are objects, written once by the store, that someone
	// wrote a new version of: the restore names them as damaged.
	Overwritten []string
}

func (t Tamper) String() string {
	var parts []string
	if n := len(t.Markers); n > 0 {
		parts = append(parts, fmt.Sprintf("%d objects were hidden under delete markers, which were removed (%s)", n, firstNames(t.Markers)))
	}
	if n := len(t.Overwritten); n > 0 {
		parts = append(parts, fmt.Sprintf("%d objects were overwritten with new versions (%s)", n, firstNames(t.Overwritten)))
	}
	return strings.Join(parts, "; ")
}

func firstNames(names []string) string {
	if len(names) > 5 {
		return strings.Join(names[:5], ", ") + fmt.Sprintf(" and %d more", len(names)-5)
	}
	return strings.Join(names, ", ")
}

// itemObjects are an item's versions by object, and its tombstones.
type itemObjects struct {
	versions map[string][]minio.ObjectInfo
	// buried holds, for each buried object's key, when it was buried.
	buried map[string]time.Time
	tombs  []minio.ObjectInfo
}

func (b *bucket) itemObjects(ctx context.Context, prefix string) (itemObjects, error) {
	all, err := b.versions(ctx, prefix)
	if err != nil {
		return itemObjects{}, err
	}
	o := itemObjects{versions: map[string][]minio.ObjectInfo{}, buried: map[string]time.Time{}}
	base := b.prefix + prefix
	for _, v := range all {
		rel := strings.TrimPrefix(v.Key, base)
		if strings.HasPrefix(rel, tombstoneDir) {
			o.tombs = append(o.tombs, v)
			if id, ok := buried(b.mac, base, rel); ok && !v.IsDeleteMarker && v.LastModified.After(o.buried[base+id]) {
				o.buried[base+id] = v.LastModified
			}
			continue
		}
		o.versions[v.Key] = append(o.versions[v.Key], v)
	}
	return o, nil
}

// live is true for an object no genuine tombstone buries since it was
// last written.
func (o itemObjects) live(key string) bool {
	at, ok := o.buried[key]
	if !ok {
		return true
	}
	for _, v := range o.versions[key] {
		if !v.IsDeleteMarker && v.LastModified.Truncate(time.Second).After(at) {
			return true
		}
	}
	return false
}

// lock keeps every version of every live object of an item until until,
// those hidden under someone's delete marker included, and removes the
// markers: the store never writes one.
func (b *bucket) lock(ctx context.Context, prefix string, until time.Time, progress Progress) (Tamper, error) {
	until = until.UTC()
	var t Tamper
	o, err := b.itemObjects(ctx, prefix)
	if err != nil {
		return t, err
	}
	if t.Markers, err = b.removeMarkers(ctx, prefix, o); err != nil {
		return t, err
	}
	n := int64(0)
	base := b.prefix + prefix
	// A tombstone outlives what it buries, so the sweep knows it for
	// kopia's garbage; once that is gone, it is no longer kept.
	for _, v := range o.tombs {
		id, ok := buried(b.mac, base, strings.TrimPrefix(v.Key, base))
		if ok && !v.IsDeleteMarker && len(o.versions[base+id]) > 0 {
			if err := b.retain(ctx, v.Key, v.VersionID, until); err != nil {
				return t, err
			}
		}
	}
	for key, vs := range o.versions {
		if !o.live(key) {
			continue
		}
		if path.Base(key) == maintenanceBlob {
			vs = latestOnly(vs)
		}
		data := 0
		for _, v := range vs {
			if v.IsDeleteMarker {
				continue
			}
			data++
			if err := b.retain(ctx, key, v.VersionID, until); err != nil {
				return t, err
			}
			n++
			if progress != nil {
				progress(n)
			}
		}
		if data > 1 && path.Base(key) != maintenanceBlob && !sameContent(vs) {
			t.Overwritten = append(t.Overwritten, key)
		}
	}
	return t, nil
}

// maintenanceBlob is the one object kopia writes again and again (its
// maintenance schedule): only its latest version is kept, and the sweep
// takes the older ones once their lock has passed.
const maintenanceBlob = "kopia.maintenance"

// latestOnly keeps the newest version that is not a delete marker.
func latestOnly(vs []minio.ObjectInfo) []minio.ObjectInfo {
	var newest *minio.ObjectInfo
	for i, v := range vs {
		if !v.IsDeleteMarker && (newest == nil || v.LastModified.After(newest.LastModified)) {
			newest = &vs[i]
		}
	}
	if newest == nil {
		return nil
	}
	return []minio.ObjectInfo{*newest}
}

// removeMarkers removes every delete marker on a live object or a genuine
// tombstone of an item: the store writes none, so each is someone else's.
// It returns the objects they hid.
func (b *bucket) removeMarkers(ctx context.Context, prefix string, o itemObjects) ([]string, error) {
	var hid []string
	remove := func(v minio.ObjectInfo) error {
		if err := b.cli.RemoveObject(ctx, b.name, v.Key, minio.RemoveObjectOptions{VersionID: v.VersionID}); err != nil {
			return fmt.Errorf("remove the delete marker someone put on %s: %w", v.Key, err)
		}
		if !slices.Contains(hid, v.Key) {
			hid = append(hid, v.Key)
		}
		return nil
	}
	base := b.prefix + prefix
	for _, v := range o.tombs {
		if _, ok := buried(b.mac, base, strings.TrimPrefix(v.Key, base)); ok && v.IsDeleteMarker {
			if err := remove(v); err != nil {
				return hid, err
			}
		}
	}
	for key, vs := range o.versions {
		if !o.live(key) {
			continue
		}
		for _, v := range vs {
			if v.IsDeleteMarker {
				if err := remove(v); err != nil {
					return hid, err
				}
			}
		}
	}
	return hid, nil
}

// unhide removes the delete markers someone put on an item's objects, so
// that a backup or a restore sees the item whole.
func (b *bucket) unhide(ctx context.Context, prefix string) ([]string, error) {
	o, err := b.itemObjects(ctx, prefix)
	if err != nil {
		return nil, err
	}
	return b.removeMarkers(ctx, prefix, o)
}

// retain keeps one version until until; one already kept longer (COMPLIANCE
// cannot be shortened) is left as it is.
func (b *bucket) retain(ctx context.Context, key, version string, until time.Time) error {
	err := b.cli.PutObjectRetention(ctx, b.name, key, minio.PutObjectRetentionOptions{Mode: &b.lockMode, RetainUntilDate: &until, VersionID: version})
	if err == nil {
		return nil
	}
	if _, have, gerr := b.cli.GetObjectRetention(ctx, b.name, key, version); gerr == nil && have != nil && !have.Before(until) {
		return nil
	}
	return fmt.Errorf("lock %s (version %s) until %s: %w", key, version, until.Format(time.RFC3339), err)
}

// sameContent is true when every version holds the same bytes, as a
// retried write of the same pack does.
func sameContent(vs []minio.ObjectInfo) bool {
	etag := ""
	for _, v := range vs {
		if v.IsDeleteMarker {
			continue
		}
		if etag != "" && v.ETag != etag {
			return false
		}
		etag = v.ETag
	}
	return true
}

// sweep deletes what genuine tombstones bury, every version once its lock
// has passed, then the tombstones of what is gone. A delete marker is never
// a reason to delete anything.
func (b *bucket) sweep(ctx context.Context, prefix string) error {
	o, err := b.itemObjects(ctx, prefix)
	if err != nil {
		return err
	}
	base := b.prefix + prefix
	for key, vs := range o.versions {
		if path.Base(key) != maintenanceBlob {
			continue
		}
		for _, v := range vs {
			if !v.IsLatest && !v.IsDeleteMarker {
				_ = b.cli.RemoveObject(ctx, b.name, key, minio.RemoveObjectOptions{VersionID: v.VersionID}) // locked still: later
			}
		}
	}
	gone := map[string]bool{}
	for key := range o.buried {
		if o.live(key) {
			continue
		}
		left := 0
		for _, v := range o.versions[key] {
			if err := b.cli.RemoveObject(ctx, b.name, key, minio.RemoveObjectOptions{VersionID: v.VersionID}); err != nil {
				left++ // still locked: a later collection takes it
			}
		}
		gone[key] = left == 0
	}
	for _, v := range o.tombs {
		id, ok := buried(b.mac, base, strings.TrimPrefix(v.Key, base))
		if ok && gone[base+id] {
			_ = b.cli.RemoveObject(ctx, b.name, v.Key, minio.RemoveObjectOptions{VersionID: v.VersionID})
		}
	}
	return nil
}
