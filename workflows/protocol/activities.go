package protocol

import (
	"encoding/json"
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
)

// The activities the workflows run, by name: package activities implements
// them, and the workflows depend on nothing with side effects.
const (
	ActivityBackup   = "Backup"
	ActivityRestore  = "Restore"
	ActivityCollect  = "Collect"
	ActivityPurge    = "Purge"
	ActivityLock     = "Lock"
	ActivityReport   = "Report"
	ActivityAskVault = "AskVault"
	// ActivityVerify runs on VerifyTaskQueue, with its own limit.
	ActivityVerify = "Verify"
	// The vault's.
	ActivityNotify         = "Notify"
	ActivitySignal         = "Signal"
	ActivityDescribeRun    = "DescribeRun"
	ActivityListVaultItems = "ListVaultItems"
	// ActivityCountVaultItems counts a vault's items that hold data.
	ActivityCountVaultItems = "CountVaultItems"
)

// ActivityNames are every activity the workflows run.
var ActivityNames = []string{
	ActivityBackup, ActivityRestore, ActivityCollect, ActivityPurge, ActivityLock, ActivityReport, ActivityAskVault, ActivityVerify,
	ActivityNotify, ActivitySignal, ActivityDescribeRun, ActivityListVaultItems, ActivityCountVaultItems,
}

// Error types of non-retryable activity failures; the workflows and the
// clients tell failures apart by them.
const (
	ErrTypeSourceMissing        = "SourceMissing"
	ErrTypeUnknownRecoveryPoint = "UnknownRecoveryPoint"
	ErrTypeTargetNotEmpty       = "TargetNotEmpty"
	ErrTypeCorrupted            = "RecoveryPointCorrupted"
	// ErrTypeVerifyFailed is a point some of whose files did not read back.
	ErrTypeVerifyFailed = "VerifyFailed"
	ErrTypeInvalidInput = "InvalidInput"
	// ErrTypeNoVault is a vault (or another workflow of ours) that is not
	// running: asking again does not help.
	ErrTypeNoVault = "NoVault"
	// ErrTypeForbidden is an activity scheduled by a workflow it does not
	// serve: refused, nothing changed.
	ErrTypeForbidden = "Forbidden"
)

// NonRetryableErrorTypes are the failures that no retry can fix: bad input
// and damaged data. Everything else (I/O faults, a worker lost) is retried.
var NonRetryableErrorTypes = []string{
	ErrTypeSourceMissing, ErrTypeUnknownRecoveryPoint, ErrTypeTargetNotEmpty, ErrTypeCorrupted, ErrTypeInvalidInput, ErrTypeForbidden, ErrTypeVerifyFailed,
}

// Message is the sentence of an activity failure, without the SDK's wrapping.
func Message(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	return err.Error()
}

// ErrorType is the type of an application error, or "".
func ErrorType(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Type()
	}
	return ""
}

// RunInfo is the type and status of one workflow run (DescribeRun).
type RunInfo struct {
	WorkflowType   string `json:"workflowType"`
	TaskQueue      string `json:"taskQueue,omitempty"`
	Running        bool   `json:"running"`
	ContinuedAsNew bool   `json:"continuedAsNew"`
	// FirstRunID names the workflow's incarnation: it stays the same
	// across continue-as-new.
	FirstRunID string `json:"firstRunId,omitempty"`
	// RunID is the run described; Asking are the IDs of its AskVault
	// activities running now.
	RunID  string   `json:"runId,omitempty"`
	Asking []string `json:"asking,omitempty"`
}

// ListedItem is one item as visibility shows it (ListVaultItems).
type ListedItem struct {
	WorkflowID         string    `json:"workflowId"`
	RunID              string    `json:"runId"`
	VaultID            string    `json:"vaultId"`
	ProtectionState    string    `json:"protectionState"`
	DeferredDeleteTime time.Time `json:"deferredDeleteTime,omitzero"`
	// WorkflowStatus is the run's status as Temporal names it: Running,
	// Completed, Failed, Terminated...
	WorkflowStatus string `json:"workflowStatus"`
	Running        bool   `json:"running"`
	// ClosedAt is when the run ended: for a purged item, the purge.
	ClosedAt time.Time `json:"closedAt,omitzero"`
	// DeleteWaiting is true while the item's delete waits for its vault.
	DeleteWaiting bool `json:"deleteWaiting,omitempty"`
	// Anomaly is true while the item has a suspect point not yet cleared.
	Anomaly bool `json:"anomaly,omitempty"`
}

// MessageInput names a running workflow of a given type, a signal or update
// of it, and the JSON payload to send (Signal).
type MessageInput struct {
	WorkflowID   string          `json:"workflowId"`
	WorkflowType string          `json:"workflowType"`
	Name         string          `json:"name"`
	Payload      json.RawMessage `json:"payload"`
}
