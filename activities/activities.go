package activities

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"recoveryvault/store"
)

// Error types of non-retryable activity failures; the workflow and the
// starter tell users apart by them.
const (
	ErrTypeSourceMissing        = "SourceMissing"
	ErrTypeUnknownRecoveryPoint = "UnknownRecoveryPoint"
	ErrTypeTargetNotEmpty       = "TargetNotEmpty"
	ErrTypeCorrupted            = "RecoveryPointCorrupted"
	ErrTypeInvalidInput         = "InvalidInput"
)

// RecoveryPoint describes one backup of an item as the workflow keeps it.
type RecoveryPoint struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	SizeBytes int64     `json:"sizeBytes"`
	// SHA256 is the checksum of the recovery point's archive.
	SHA256 string `json:"sha256"`
}

// NonRetryableErrorTypes lists the failures that no retry can fix: bad
// input and damaged data. Everything else (I/O faults, a worker lost) is
// retried.
var NonRetryableErrorTypes = []string{
	ErrTypeSourceMissing, ErrTypeUnknownRecoveryPoint, ErrTypeTargetNotEmpty, ErrTypeCorrupted, ErrTypeInvalidInput,
}

// Activities are the side effects of items and vaults: the store, the
// Temporal client for talking to other workflows, and the notifier.
type Activities struct {
	Store    *store.Store
	Client   client.Client
	Notifier Notifier
}

// BackupInput asks for a new recovery point of an item.
type BackupInput struct {
	VaultID         string    `json:"vaultId"`
	ItemID          string    `json:"itemId"`
	RecoveryPointID string    `json:"recoveryPointId"`
	SourcePath      string    `json:"sourcePath"`
	CreatedAt       time.Time `json:"createdAt"`
	ExpiresAt       time.Time `json:"expiresAt"`
}

// BackupResult is the recovery point written and what it skipped.
type BackupResult struct {
	RecoveryPoint RecoveryPoint `json:"recoveryPoint"`
	Files         int           `json:"files"`
	Skipped       []string      `json:"skipped,omitempty"`
}

// Backup copies the item's source tree into a new recovery point.
func (a *Activities) Backup(ctx context.Context, in BackupInput) (BackupResult, error) {
	m, err := a.Store.Backup(ctx, in.VaultID, in.ItemID, in.RecoveryPointID, in.SourcePath, heartbeat(ctx))
	if err != nil {
		return BackupResult{}, classify(err)
	}
	files := 0
	for _, e := range m.Entries {
		if e.Type == store.EntryFile {
			files++
		}
	}
	return BackupResult{
		RecoveryPoint: RecoveryPoint{
			ID:        in.RecoveryPointID,
			CreatedAt: in.CreatedAt,
			ExpiresAt: in.ExpiresAt,
			SizeBytes: m.ArchiveSize,
			SHA256:    m.ArchiveSHA256,
		},
		Files:   files,
		Skipped: m.Skipped,
	}, nil
}

// RestoreInput asks for a recovery point to be written under TargetPath.
type RestoreInput struct {
	VaultID         string `json:"vaultId"`
	ItemID          string `json:"itemId"`
	RecoveryPointID string `json:"recoveryPointId"`
	// SHA256 is the archive checksum recorded when the point was made.
	SHA256     string `json:"sha256"`
	TargetPath string `json:"targetPath"`
}

// RestoreResult tells what was written.
type RestoreResult struct {
	Files int   `json:"files"`
	Bytes int64 `json:"bytes"`
}

// Restore writes a recovery point to TargetPath, every file verified.
func (a *Activities) Restore(ctx context.Context, in RestoreInput) (RestoreResult, error) {
	m, err := a.Store.Restore(ctx, in.VaultID, in.ItemID, in.RecoveryPointID, in.SHA256, in.TargetPath, heartbeat(ctx))
	if err != nil {
		return RestoreResult{}, classify(err)
	}
	var r RestoreResult
	for _, e := range m.Entries {
		if e.Type == store.EntryFile {
			r.Files++
			r.Bytes += e.Size
		}
	}
	return r, nil
}

// DeleteInput names recovery points to remove, or, with All, the whole item:
// garbage collection names points, the purge takes everything.
type DeleteInput struct {
	VaultID          string   `json:"vaultId"`
	ItemID           string   `json:"itemId"`
	RecoveryPointIDs []string `json:"recoveryPointIds,omitempty"`
	All              bool     `json:"all,omitempty"`
}

// DeleteResult counts the recovery points removed by this attempt.
type DeleteResult struct {
	Removed int `json:"removed"`
}

// DeleteRecoveryPoints removes recovery points; it is idempotent, so the
// workflow retries it until it succeeds.
func (a *Activities) DeleteRecoveryPoints(ctx context.Context, in DeleteInput) (DeleteResult, error) {
	if in.All {
		ids, err := a.Store.List(in.VaultID, in.ItemID)
		if err != nil {
			return DeleteResult{}, classify(err)
		}
		if err := a.Store.Purge(in.VaultID, in.ItemID, heartbeat(ctx)); err != nil {
			return DeleteResult{}, classify(err)
		}
		return DeleteResult{Removed: len(ids)}, nil
	}
	n, err := a.Store.Delete(in.VaultID, in.ItemID, in.RecoveryPointIDs, heartbeat(ctx))
	return DeleteResult{Removed: n}, classify(err)
}

func heartbeat(ctx context.Context) store.Progress {
	if !activity.IsActivity(ctx) {
		return nil
	}
	return func(bytes int64) { activity.RecordHeartbeat(ctx, bytes) }
}

// classify turns store errors that no retry can fix into non-retryable
// application errors, keeping the store's sentence as the message.
func classify(err error) error {
	if err == nil {
		return nil
	}
	for _, c := range []struct {
		err error
		typ string
	}{
		{store.ErrSourceMissing, ErrTypeSourceMissing},
		{store.ErrUnknownRecoveryPoint, ErrTypeUnknownRecoveryPoint},
		{store.ErrTargetNotEmpty, ErrTypeTargetNotEmpty},
		{store.ErrCorrupted, ErrTypeCorrupted},
		{store.ErrInvalidInput, ErrTypeInvalidInput},
	} {
		if errors.Is(err, c.err) {
			// The type says the kind; the message is the sentence alone.
			msg := strings.TrimPrefix(err.Error(), c.err.Error()+": ")
			return temporal.NewNonRetryableApplicationError(msg, c.typ, nil)
		}
	}
	return err
}
