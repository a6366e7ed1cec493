// Package activities holds the side effects of items and vaults: the
// recovery-point store, the notifier, and the calls to other workflows.
// Each activity implements one that the workflows name (workflows/effects.go).
package activities

import (
	"context"
	"errors"
	"strings"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"recoveryvault/store"
	"recoveryvault/workflows"
)

// Activities are the side effects of items and vaults, with what they
// need: the store, the Temporal client for talking to other workflows, and
// the notifier.
type Activities struct {
	Store    *store.Store
	Client   client.Client
	Notifier Notifier
}

// Backup copies the item's source tree into a new recovery point.
func (a *Activities) Backup(ctx context.Context, in workflows.BackupInput) (workflows.BackupResult, error) {
	m, err := a.Store.Backup(ctx, in.VaultID, in.ItemID, in.Point.ID, in.SourcePath, heartbeat(ctx))
	if err != nil {
		return workflows.BackupResult{}, classify(err)
	}
	files := 0
	for _, e := range m.Entries {
		if e.Type == store.EntryFile {
			files++
		}
	}
	rp := in.Point
	rp.SizeBytes, rp.NewBytes, rp.SHA256 = m.ArchiveSize, m.ArchiveSize, m.ArchiveSHA256
	return workflows.BackupResult{Point: rp, Files: files, Skipped: m.Skipped}, nil
}

// Restore writes a recovery point to TargetPath, every file verified.
func (a *Activities) Restore(ctx context.Context, in workflows.RestoreInput) (workflows.RestoreResult, error) {
	m, err := a.Store.Restore(ctx, in.VaultID, in.ItemID, in.Point.ID, in.Point.SHA256, in.TargetPath, heartbeat(ctx))
	if err != nil {
		return workflows.RestoreResult{}, classify(err)
	}
	var r workflows.RestoreResult
	for _, e := range m.Entries {
		if e.Type == store.EntryFile {
			r.Files++
			r.Bytes += e.Size
		}
	}
	return r, nil
}

// Collect removes expired recovery points. It is idempotent, so the
// workflow retries it.
func (a *Activities) Collect(ctx context.Context, in workflows.CollectInput) error {
	_, err := a.Store.Delete(in.VaultID, in.ItemID, in.RecoveryPointIDs, heartbeat(ctx))
	return classify(err)
}

// Purge destroys everything of an item, then tells its vault and sends the
// alert. It is idempotent: the workflow retries it until it succeeds.
func (a *Activities) Purge(ctx context.Context, in workflows.PurgeInput) error {
	if err := a.Store.Purge(in.VaultID, in.ItemID, heartbeat(ctx)); err != nil {
		return classify(err)
	}
	_, err := a.Announce(ctx, in.Announce)
	return err
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
		{store.ErrSourceMissing, workflows.ErrTypeSourceMissing},
		{store.ErrUnknownRecoveryPoint, workflows.ErrTypeUnknownRecoveryPoint},
		{store.ErrTargetNotEmpty, workflows.ErrTypeTargetNotEmpty},
		{store.ErrCorrupted, workflows.ErrTypeCorrupted},
		{store.ErrInvalidInput, workflows.ErrTypeInvalidInput},
	} {
		if errors.Is(err, c.err) {
			// The type says the kind; the message is the sentence alone.
			msg := strings.TrimPrefix(err.Error(), c.err.Error()+": ")
			return temporal.NewNonRetryableApplicationError(msg, c.typ, nil)
		}
	}
	return err
}
