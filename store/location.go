package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kopia/kopia/repo/blob"
	"github.com/kopia/kopia/repo/blob/filesystem"
	"github.com/kopia/kopia/repo/blob/s3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// A backend is where the items' repositories live: a directory, or a
// bucket. Kopia reads and writes the repositories through it; the store
// itself locks, purges and sweeps an item's objects.
type backend interface {
	String() string
	// locks is true when objects carry a retention.
	locks() bool
	// connection is kopia's storage of the repository under prefix; where
	// the backend locks, the objects it writes are kept until the time
	// lockTimes holds under lockKey.
	connection(prefix, lockKey string) blob.ConnectionInfo
	// initialized is true when a repository exists under prefix.
	initialized(ctx context.Context, prefix string) (bool, error)
	// lock extends the retention of every version of every object under
	// prefix that kopia has not deleted to until, and says what someone
	// else did to them.
	lock(ctx context.Context, prefix string, until time.Time, progress Progress) (Tamper, error)
	// unhide removes delete markers someone else put under prefix, and
	// says which objects they hid.
	unhide(ctx context.Context, prefix string) ([]string, error)
	// purge deletes everything under prefix: every object, every version.
	purge(ctx context.Context, prefix string, progress Progress) error
	// sweep deletes what kopia deleted but the backend kept, once its
	// retention has passed.
	sweep(ctx context.Context, prefix string) error
	// objects gives every stored object under prefix, every version, with
	// its bytes: what an audit (or a test) reads to see what is left.
	objects(ctx context.Context, prefix string, fn func(name string, data []byte) error) error
}

// directory keeps the repositories under a root directory.
type directory struct{ root string }

func openDirectory(root string) (*directory, error) {
	if root == "" {
		return nil, errors.New("the store needs a location: a directory, or s3://BUCKET/PREFIX")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("store directory %s: %w", root, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("create store directory %s: %w", abs, err)
	}
	return &directory{root: abs}, nil
}

func (d *directory) String() string { return d.root }
func (d *directory) locks() bool    { return false }

func (d *directory) path(prefix string) string {
	return filepath.Join(d.root, filepath.FromSlash(prefix))
}

func (d *directory) connection(prefix, _ string) blob.ConnectionInfo {
	return blob.ConnectionInfo{Type: "filesystem", Config: &filesystem.Options{Path: d.path(prefix)}}
}

func (d *directory) initialized(_ context.Context, prefix string) (bool, error) {
	_, err := os.Stat(filepath.Join(d.path(prefix), "kopia.repository.f"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (d *directory) lock(context.Context, string, time.Time, Progress) (Tamper, error) {
	return Tamper{}, nil
}
func (d *directory) sweep(context.Context, string) error              { return nil }
func (d *directory) unhide(context.Context, string) ([]string, error) { return nil, nil }

func (d *directory) purge(_ context.Context, prefix string, progress Progress) error {
	dir := d.path(prefix)
	// One top-level entry at a time, so a long purge shows it is alive.
	entries, _ := os.ReadDir(dir)
	for i, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
		if progress != nil {
			progress(int64(i + 1))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if parent := filepath.Dir(dir); parent != d.root {
		_ = os.Remove(parent) // the vault's directory, once empty
	}
	return syncDir(d.root)
}

func (d *directory) objects(_ context.Context, prefix string, fn func(string, []byte) error) error {
	root := d.path(prefix)
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == root {
			return fs.SkipAll
		}
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(d.root, p)
		return fn(filepath.ToSlash(rel), data)
	})
	return err
}

// bucket keeps the repositories under a prefix of an S3 bucket. The
// connection comes from the AWS SDK's standard environment.
type bucket struct {
	cli      *minio.Client
	name     string
	prefix   string
	opts     s3.Options
	lockMode minio.RetentionMode
	locked   bool
	// mac signs the tombstones of what kopia deletes.
	mac []byte
	// unlocked says why a bucket with object lock is used without it.
	unlocked string
}

// openS3 reads s3://BUCKET/PREFIX and the environment, and looks at the
// bucket: it must exist; with object lock enabled, every object is locked.
func openS3(ctx context.Context, location, mode string, noLock bool) (*bucket, error) {
	u, err := url.Parse(location)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("store %q is not s3://BUCKET/PREFIX", location)
	}
	b := &bucket{name: u.Host, prefix: strings.Trim(u.Path, "/"), lockMode: minio.RetentionMode(mode)}
	if b.prefix != "" {
		b.prefix += "/"
	}
	endpoint := cmp.Or(os.Getenv("AWS_ENDPOINT_URL_S3"), os.Getenv("AWS_ENDPOINT_URL"), "https://s3.amazonaws.com")
	e, err := url.Parse(endpoint)
	if err != nil || e.Host == "" {
		return nil, fmt.Errorf("S3 endpoint %q is not a URL such as http://127.0.0.1:7070", endpoint)
	}
	region := cmp.Or(os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION"), "us-east-1")
	b.opts = s3.Options{BucketName: b.name, Endpoint: e.Host, DoNotUseTLS: e.Scheme == "http", Region: region}
	// The same credentials as kopia's own connection: the environment,
	// then the instance's role. None is written to a file.
	creds := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{}, &credentials.IAM{},
	})
	lookup := minio.BucketLookupAuto
	if os.Getenv("AWS_ENDPOINT_URL_S3")+os.Getenv("AWS_ENDPOINT_URL") != "" {
		// A custom endpoint is addressed path-style: bucket names in the
		// host need DNS that such a service rarely has.
		lookup = minio.BucketLookupPath
	}
	b.cli, err = minio.New(e.Host, &minio.Options{Creds: creds, Secure: e.Scheme != "http", Region: region, BucketLookup: lookup})
	if err != nil {
		return nil, fmt.Errorf("S3 client for %s: %w", endpoint, err)
	}
	ok, err := b.cli.BucketExists(ctx, b.name)
	switch {
	case err != nil:
		return nil, fmt.Errorf("bucket %s at %s cannot be reached: %w; check AWS_ENDPOINT_URL_S3, AWS_REGION and the credentials", b.name, endpoint, err)
	case !ok:
		return nil, fmt.Errorf("bucket %s does not exist at %s: create it, with object lock to protect backups from deletion", b.name, endpoint)
	}
	// The storage is the last line: a worker that cannot tell whether it
	// holds never runs as if it did not.
	enabled, _, _, _, err := b.cli.GetObjectLockConfig(ctx, b.name)
	switch code := minio.ToErrorResponse(err).Code; {
	case err == nil:
		b.locked = enabled == "Enabled"
	case code == "ObjectLockConfigurationNotFoundError":
	case noLock:
		b.unlocked = "its object-lock status could not be read, and the worker runs with " + NoObjectLockFlag
	default:
		return nil, fmt.Errorf("the object-lock status of bucket %s cannot be read (%v): allow the workers s3:GetBucketObjectLockConfiguration, "+
			"or start them with %s to run without the storage's protection", b.name, err, NoObjectLockFlag)
	}
	if b.locked && noLock {
		b.locked, b.unlocked = false, "the worker runs with "+NoObjectLockFlag
	}
	return b, nil
}

// NoObjectLockFlag runs a worker without the bucket's object lock.
const NoObjectLockFlag = "--no-object-lock"

func (b *bucket) String() string {
	s := "s3://" + b.name + "/" + b.prefix
	switch {
	case b.locked:
		return s + " (object lock " + string(b.lockMode) + ")"
	case b.unlocked != "":
		return s + " (object lock not used: " + b.unlocked + ")"
	}
	return s + " (no object lock)"
}

func (b *bucket) locks() bool { return b.locked }

// lockedS3 is the kopia storage type of a locking bucket: kopia's S3
// storage, with a retention on every object it writes.
const lockedS3 = "recoveryvault-locked-s3"

type lockedS3Options struct {
	s3.Options
	Mode string `json:"lockMode"`
	// Key names the lock time of the objects written in lockTimes.
	Key string `json:"lockKey"`
}

func init() {
	blob.AddSupportedStorage(lockedS3, lockedS3Options{}, func(ctx context.Context, o *lockedS3Options, isCreate bool) (blob.Storage, error) {
		st, err := s3.New(ctx, &o.Options, isCreate)
		if err != nil {
			return nil, err
		}
		return &lockedStorage{Storage: st, opts: *o}, nil
	})
}

// lockedStorage sets an explicit retention on every object kopia writes,
// never relying on the bucket's default rule: a server may not stamp it on
// objects, and whoever may replace the rule could remove it.
type lockedStorage struct {
	blob.Storage
	opts lockedS3Options
	// hidden are the blobs buried, as of the last listing and since.
	mu     sync.Mutex
	hidden map[blob.ID]time.Time
}

func (s *lockedStorage) PutBlob(ctx context.Context, id blob.ID, data blob.Bytes, o blob.PutOptions) error {
	var until time.Time
	if v, ok := lockTimes.Load(s.opts.Key); ok {
		until = time.Unix(0, v.(*atomic.Int64).Load())
	}
	if period := time.Until(until); o.RetentionPeriod == 0 && period > 0 {
		o.RetentionMode, o.RetentionPeriod = blob.RetentionMode(s.opts.Mode), period
	}
	return s.Storage.PutBlob(ctx, id, data, o)
}

// ConnectionInfo keeps the lock when kopia records how to reopen it.
func (s *lockedStorage) ConnectionInfo() blob.ConnectionInfo {
	return blob.ConnectionInfo{Type: lockedS3, Config: &s.opts}
}

func (b *bucket) connection(prefix, lockKey string) blob.ConnectionInfo {
	o := b.opts
	o.Prefix = b.prefix + prefix
	if !b.locked {
		return blob.ConnectionInfo{Type: "s3", Config: &o}
	}
	return blob.ConnectionInfo{Type: lockedS3, Config: &lockedS3Options{Options: o, Mode: string(b.lockMode), Key: lockKey}}
}

func (b *bucket) initialized(ctx context.Context, prefix string) (bool, error) {
	key := b.prefix + prefix + "kopia.repository"
	_, err := b.cli.StatObject(ctx, b.name, key, minio.StatObjectOptions{})
	if code := minio.ToErrorResponse(err).Code; code != "NoSuchKey" && code != "MethodNotAllowed" {
		return err == nil, err
	}
	// Hidden under a delete marker, it still exists: a new repository
	// written over it would make every point unreadable.
	for v := range b.cli.ListObjects(ctx, b.name, minio.ListObjectsOptions{Prefix: key, WithVersions: true}) {
		if v.Err != nil {
			return false, v.Err
		}
		if v.Key == key && !v.IsDeleteMarker {
			return true, nil
		}
	}
	return false, nil
}

// versions lists every version and delete marker under prefix.
func (b *bucket) versions(ctx context.Context, prefix string) ([]minio.ObjectInfo, error) {
	var all []minio.ObjectInfo
	for obj := range b.cli.ListObjects(ctx, b.name, minio.ListObjectsOptions{Prefix: b.prefix + prefix, Recursive: true, WithVersions: true}) {
		if obj.Err != nil {
			return nil, obj.Err
		}
		all = append(all, obj)
	}
	return all, nil
}

func (b *bucket) purge(ctx context.Context, prefix string, progress Progress) error {
	all, err := b.versions(ctx, prefix)
	if err != nil {
		return err
	}
	// Versions before delete markers: removing a marker first would make
	// an older version current again, if only for a moment.
	slices.SortStableFunc(all, func(x, y minio.ObjectInfo) int {
		return boolInt(x.IsDeleteMarker) - boolInt(y.IsDeleteMarker)
	})
	for i, obj := range all {
		err := b.cli.RemoveObject(ctx, b.name, obj.Key, minio.RemoveObjectOptions{VersionID: obj.VersionID})
		if err != nil {
			return fmt.Errorf("delete %s (version %s): %w", obj.Key, obj.VersionID, err)
		}
		if progress != nil {
			progress(int64(i + 1))
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (b *bucket) objects(ctx context.Context, prefix string, fn func(string, []byte) error) error {
	all, err := b.versions(ctx, prefix)
	if err != nil {
		return err
	}
	for _, obj := range all {
		if obj.IsDeleteMarker {
			continue
		}
		r, err := b.cli.GetObject(ctx, b.name, obj.Key, minio.GetObjectOptions{VersionID: obj.VersionID})
		if err != nil {
			return err
		}
		data, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			return fmt.Errorf("read %s (version %s): %w", obj.Key, obj.VersionID, err)
		}
		if err := fn(obj.Key+"@"+obj.VersionID, data); err != nil {
			return err
		}
	}
	return nil
}
