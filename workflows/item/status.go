package item

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"recoveryvault/workflows/protocol"
)

// status is the answer of the status query and of every update. now is
// only used for the time left before the purge.
func (w *item) status(now time.Time) Status {
	s := Status{
		VaultID:         w.in.VaultID,
		ItemID:          w.in.ItemID,
		SourcePath:      w.in.SourcePath,
		Policy:          w.in.Policy,
		ProtectionState: protocol.VisibleState(w.st.ProtectionState),
		RecoveryPoints:  append([]protocol.RecoveryPoint{}, w.st.RecoveryPoints...),
		Audit:           append([]protocol.AuditEntry{}, w.st.Audit...),
	}
	for _, a := range w.st.Waiting {
		switch a.Op {
		case protocol.OpDelete:
			s.PendingDelete = &PendingDelete{RequestedBy: a.By, Reason: a.Reason, Since: a.Since, Attempts: a.Attempts, RetryAt: a.RetryAt, Why: a.Why, Held: a.Held}
		case protocol.OpApproved:
			s.ConfirmingApproval = &ConfirmingApproval{RequestID: a.RequestID, ApprovedBy: a.By, Attempts: a.Attempts, Why: a.Why}
		}
	}
	if s.ProtectionState == protocol.SoftDeleted {
		s.IsScheduledForDeferredDelete = true
		s.DeferredDeleteTimeInUTC = w.st.Deadline.UTC().Format(time.RFC3339)
		s.DeferredDeleteTimeRemaining = protocol.FormatRemaining(w.st.Deadline.Sub(now))
	}
	if !w.st.LastBackupTime.IsZero() {
		s.LastBackupTime = w.st.LastBackupTime.UTC().Format(time.RFC3339)
	}
	if !w.st.LockedUntil.IsZero() {
		s.ObjectsLockedUntil = w.st.LockedUntil.UTC().Format(time.RFC3339)
	}
	s.SoftDeleteRetentionOverride = w.settings.OverrideNote()
	s.ObjectLock = w.settings.ObjectLock
	// The window that applies: the one the delete got, or before a delete
	// the one it would get as far as the item knows its vault.
	var window time.Duration
	if !w.st.DeletedAt.IsZero() && w.st.ProtectionState != protocol.Protected && w.st.ProtectionState != protocol.ProtectionStopped {
		window = w.st.Deadline.Sub(w.st.DeletedAt)
	} else {
		in := w.windowInputs(w.settings.Override())
		s.SoftDeleteWindowInputs = &in
		window, _ = in.Window(protocol.DefaultSoftDeleteSettings())
	}
	s.SoftDeleteRetentionDays = retentionDays(window, w.windowInputs(protocol.RetentionOverride{}))
	s.SoftDeleteWindow = protocol.WindowText(window)
	return s
}

// retentionDays are the days of soft-delete retention a window stands for:
// a dev-mode window of minutes stands for the days it replaced.
func retentionDays(window time.Duration, in protocol.WindowInputs) int {
	const day = 24 * time.Hour
	if window%day != 0 {
		window, _ = in.Window(protocol.DefaultSoftDeleteSettings())
	}
	return int(window / day)
}

// windowInputs are the item's part in the window of a delete made now.
func (w *item) windowInputs(o protocol.RetentionOverride) protocol.WindowInputs {
	return protocol.WindowInputs{ItemDays: w.in.SoftDeleteRetentionDays, Floor: w.st.VaultFloor, Override: o}
}

// ItemInput starts a BackupItem. State is set only by continue-as-new.
type ItemInput struct {
	VaultID    string          `json:"vaultId"`
	ItemID     string          `json:"itemId"`
	SourcePath string          `json:"sourcePath"`
	Policy     protocol.Policy `json:"policy"`
	// SoftDeleteRetentionDays is the window a delete gets; 0 means 14.
	SoftDeleteRetentionDays int        `json:"softDeleteRetentionDays,omitempty"`
	State                   *ItemState `json:"state,omitempty"`
}

// Status is the answer of the status query and of every update.
type Status struct {
	VaultID                      string          `json:"vaultId"`
	ItemID                       string          `json:"itemId"`
	SourcePath                   string          `json:"sourcePath"`
	Policy                       protocol.Policy `json:"policy"`
	ProtectionState              protocol.State  `json:"protectionState"`
	IsScheduledForDeferredDelete bool            `json:"isScheduledForDeferredDelete"`
	DeferredDeleteTimeInUTC      string          `json:"deferredDeleteTimeInUTC"`
	DeferredDeleteTimeRemaining  string          `json:"deferredDeleteTimeRemaining"`
	// SoftDeleteWindow is the window the delete got, or a delete now would;
	// SoftDeleteRetentionDays its days, or under dev mode the days replaced.
	SoftDeleteRetentionDays int    `json:"softDeleteRetentionDays"`
	SoftDeleteWindow        string `json:"softDeleteWindow"`
	// SoftDeleteWindowInputs are the item's part of that window, before a
	// delete.
	SoftDeleteWindowInputs *protocol.WindowInputs `json:"softDeleteWindowInputs,omitempty"`
	// SoftDeleteRetentionOverride says that the worker replaces every
	// delete's window (dev mode's --soft-delete-retention).
	SoftDeleteRetentionOverride string                   `json:"softDeleteRetentionOverride,omitempty"`
	LastBackupTime              string                   `json:"lastBackupTime"`
	RecoveryPoints              []protocol.RecoveryPoint `json:"recoveryPoints"`
	Audit                       []protocol.AuditEntry    `json:"audit"`
	// ObjectLock says how the store locks the item's objects, and
	// ObjectsLockedUntil until when.
	ObjectLock         string `json:"objectLock,omitempty"`
	ObjectsLockedUntil string `json:"objectsLockedUntil,omitempty"`
	// PendingApproval is in the answer to a delete that waits for approval.
	PendingApproval *protocol.MuaRequest `json:"pendingApproval,omitempty"`
	// PendingDelete is a delete waiting for its vault to answer.
	PendingDelete *PendingDelete `json:"pendingDelete,omitempty"`
	// ConfirmingApproval is an approval received whose vault could not
	// confirm it yet, asked again until it does.
	ConfirmingApproval *ConfirmingApproval `json:"confirmingApproval,omitempty"`
}

// PendingDelete is a delete waiting for its vault's answer.
type PendingDelete struct {
	RequestedBy string    `json:"requestedBy"`
	Reason      string    `json:"reason,omitempty"`
	Since       time.Time `json:"since"`
	Attempts    int       `json:"attempts"`
	RetryAt     time.Time `json:"retryAt"`
	// Why kept the vault from answering; Held says it held the delete.
	Why  string `json:"why"`
	Held bool   `json:"held,omitempty"`
}

// ConfirmingApproval is an approval waiting for its vault's confirmation.
type ConfirmingApproval struct {
	RequestID  string `json:"requestId"`
	ApprovedBy string `json:"approvedBy"`
	Attempts   int    `json:"attempts"`
	Why        string `json:"why"`
}

// Validate checks a start input and fills in defaults. It returns the first
// problem in words for the person who started the item.
func (in *ItemInput) Validate() error {
	if err := protocol.ValidateID("vaultId", in.VaultID); err != nil {
		return err
	}
	if err := protocol.ValidateID("itemId", in.ItemID); err != nil {
		return err
	}
	if in.SourcePath == "" {
		return errors.New("sourcePath is missing: give the directory to back up")
	}
	if !filepath.IsAbs(in.SourcePath) {
		return fmt.Errorf("sourcePath %q is not absolute: the worker resolves paths on its own machine, so give an absolute path", in.SourcePath)
	}
	freq, err := protocol.ParseFrequency(in.Policy.Frequency)
	if err != nil {
		return err
	}
	if freq < protocol.MinFrequency {
		return fmt.Errorf("policy.frequency %s is too short: backups run at most once a minute", in.Policy.Frequency)
	}
	if in.Policy.RetentionDays < protocol.MinRetentionDays {
		return fmt.Errorf("policy.retentionDays %d is too short: keep recovery points for at least %d day", in.Policy.RetentionDays, protocol.MinRetentionDays)
	}
	if in.Policy.RetentionDays > protocol.MaxRetentionDays {
		return fmt.Errorf("policy.retentionDays %d is too long: keep recovery points for at most %d days (ten years)", in.Policy.RetentionDays, protocol.MaxRetentionDays)
	}
	if len(in.SourcePath) > protocol.MaxPathBytes {
		return fmt.Errorf("sourcePath of %d bytes is over its bound of %d bytes", len(in.SourcePath), protocol.MaxPathBytes)
	}
	if in.SoftDeleteRetentionDays == 0 {
		in.SoftDeleteRetentionDays = protocol.DefaultSoftDeleteRetentionDays
	}
	if in.SoftDeleteRetentionDays < protocol.MinSoftDeleteRetentionDays || in.SoftDeleteRetentionDays > protocol.MaxSoftDeleteRetentionDays {
		return fmt.Errorf("softDeleteRetentionDays %d is out of bounds: soft-deleted data is kept %d to %d days",
			in.SoftDeleteRetentionDays, protocol.MinSoftDeleteRetentionDays, protocol.MaxSoftDeleteRetentionDays)
	}
	if _, err := in.Policy.VerifyInterval(); err != nil {
		return err
	}
	if r := in.Policy.Anomaly; r != nil {
		if err := r.Check(); err != nil {
			return err
		}
	}
	return nil
}

// WindowIfDeletedNow is the window a delete made now would get under the
// vault's settings vs, or the one a soft-deleted item got.
func WindowIfDeletedNow(st Status, vs protocol.SoftDeleteSettings) (days int, text string, disabled bool) {
	if st.ProtectionState == protocol.SoftDeleted || st.ProtectionState == protocol.Purged || st.SoftDeleteWindowInputs == nil {
		return st.SoftDeleteRetentionDays, st.SoftDeleteWindow, false
	}
	w, disabled := st.SoftDeleteWindowInputs.Window(vs)
	return int(w / (24 * time.Hour)), protocol.WindowText(w), disabled
}
