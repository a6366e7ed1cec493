// Package protocol is what items, vaults and clients exchange: names, states,
// requests and answers, settings, alerts and audit entries.
package protocol

import (
	"fmt"
	"regexp"
	"slices"

	"go.temporal.io/sdk/temporal"

	"recoveryvault/internal/searchattributes"
)

// State is an item's protectionState (docs/contract.md section 3).
type State string

const (
	Protected         State = "Protected"
	ProtectionStopped State = "ProtectionStopped"
	SoftDeleted       State = "SoftDeleted"
	// Purging shows as SoftDeleted: Purged is said only of data that is gone.
	Purging State = "Purging"
	Purged  State = "Purged"
)

// Operation names an event: what a person asked, or what the item's own
// clock and effects report.
type Operation string

// A person's operations (docs/contract.md section 2).
const (
	OpStop      Operation = "stop"
	OpDelete    Operation = "delete"
	OpUndelete  Operation = "undelete"
	OpResume    Operation = "resume"
	OpBackupNow Operation = "backupNow"
	OpRestore   Operation = "restore"
	// OpClearAnomaly accepts an item's suspect points, with a reason: the
	// points before them expire again and deletes go on. It is critical.
	OpClearAnomaly Operation = "clearAnomaly"
	// OpVerify reads a recovery point back from the store and checks every
	// file against its backup's hashes: a restore drill, writing nothing.
	OpVerify Operation = "verify"
	// OpApproved is the vault's word that a delete waiting for approval
	// was approved (the deleteApproved signal).
	OpApproved Operation = SignalDeleteApproved
)

// ByPerson is true for the operations people ask for.
func (op Operation) ByPerson() bool {
	return slices.Contains(UserOperations, op) || op == OpApproved
}

// VisibleStates are the protectionStates users see, in the order lists
// and filters show them.
var VisibleStates = []State{Protected, ProtectionStopped, SoftDeleted, Purged}

// VisibleState is the protectionState users see: Purging is still
// SoftDeleted to them until the purge has finished.
func VisibleState(s State) State {
	if s == Purging {
		return SoftDeleted
	}
	return s
}

// UserOperations are the operations a person can ask of an item, in the
// order a console offers them.
var UserOperations = []Operation{OpBackupNow, OpStop, OpDelete, OpUndelete, OpResume, OpRestore, OpVerify, OpClearAnomaly}

// Names a user types (docs/contract.md section 2).
const (
	TaskQueue = "backup"
	// VerifyTaskQueue is where restore drills run, so that they never take
	// a backup's place on a worker.
	VerifyTaskQueue = "backup-verify"
	WorkflowType    = "BackupItem"

	SignalStop     = "stop"
	SignalDelete   = "delete"
	SignalUndelete = "undelete"
	SignalResume   = "resume"

	UpdateStop      = "stop"
	UpdateDelete    = "delete"
	UpdateUndelete  = "undelete"
	UpdateResume    = "resume"
	UpdateBackupNow = "backupNow"
	UpdateRestore   = "restore"
	// UpdateClearAnomaly is also a signal of the same name.
	UpdateClearAnomaly = "clearAnomaly"
	// UpdateVerify takes {"recoveryPointId": "rp-..."} or nothing.
	UpdateVerify = "verify"

	QueryStatus = "status"
)

// Search attributes, registered on every server the worker talks to.
var (
	VaultIDAttribute  = temporal.NewSearchAttributeKeyKeyword(searchattributes.VaultID)
	StateAttribute    = temporal.NewSearchAttributeKeyKeyword(searchattributes.State)
	DeadlineAttribute = temporal.NewSearchAttributeKeyTime(searchattributes.Deadline)
	WaitingAttribute  = temporal.NewSearchAttributeKeyKeyword(searchattributes.Waiting)
	AnomalyAttribute  = temporal.NewSearchAttributeKeyKeyword(searchattributes.Anomaly)
)

// WorkflowID is the ID of an item's workflow.
func WorkflowID(vaultID, itemID string) string {
	return "backup-item/" + vaultID + "/" + itemID
}

// ItemsQuery is the visibility query of a vault's items ("" for every
// vault) in a state; with no state, those that hold data. Each is listed once.
func ItemsQuery(vaultID string, state State) string {
	q := fmt.Sprintf("WorkflowType = '%s'", WorkflowType)
	if vaultID != "" {
		q += fmt.Sprintf(" AND %s = '%s'", searchattributes.VaultID, vaultID)
	} else {
		q += " AND " + searchattributes.VaultID + " IS NOT NULL"
	}
	// A purged item shows Purged a moment before its run shows completed:
	// it is counted by its state, so it is never in both lists.
	switch state {
	case "":
		q += fmt.Sprintf(" AND ExecutionStatus = 'Running' AND %s != '%s'", searchattributes.State, Purged)
	case Purged:
		q += fmt.Sprintf(" AND ExecutionStatus != 'ContinuedAsNew' AND %s = '%s'", searchattributes.State, Purged)
	default:
		q += fmt.Sprintf(" AND ExecutionStatus = 'Running' AND %s = '%s'", searchattributes.State, state)
	}
	return q
}

// WaitingDelete is the Waiting attribute's value while an item's delete
// waits for its vault.
const WaitingDelete = "delete"

// WaitingQuery lists a vault's items ("" for every vault) whose delete
// waits for the vault.
func WaitingQuery(vaultID string) string {
	return ItemsQuery(vaultID, "") + fmt.Sprintf(" AND %s = '%s'", searchattributes.Waiting, WaitingDelete)
}

// AnomalySuspect is the Anomaly attribute's value while an item has a
// suspect point not yet cleared.
const AnomalySuspect = "suspect"

// AnomalyQuery lists a vault's items ("" for every vault) with an anomaly.
func AnomalyQuery(vaultID string) string {
	return ItemsQuery(vaultID, "") + fmt.Sprintf(" AND %s = '%s'", searchattributes.Anomaly, AnomalySuspect)
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidateID checks a vault or item ID: it names a workflow and a directory
// of the store, so it may hold no path separators.
func ValidateID(kind, id string) error {
	if id == "" {
		return fmt.Errorf("%s is missing", kind)
	}
	if !idPattern.MatchString(id) {
		return fmt.Errorf("%s %q is not valid: use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit", kind, id)
	}
	return nil
}

// Multi-user authorization names a user types (docs/contract.md section 2).
const (
	UpdateEnableMua = "enableMua"
	UpdateApprove   = "approve"
	UpdateReject    = "reject"
	// SignalDeleteApproved tells an item that its delete was approved. The
	// item believes it only after its vault confirms the approval.
	SignalDeleteApproved = "deleteApproved"
)

// UpdateItemDelete is how an item's delete reaches its vault.
const UpdateItemDelete = "itemDelete"

// Vault names a user types (docs/contract.md section 2).
const (
	VaultWorkflowType   = "Vault"
	UpdateSetSoftDelete = "setSoftDelete"
	UpdateDeleteVault   = "deleteVault"
	QueryVaultStatus    = "status"
)

// VaultWorkflowID is the ID of a vault's workflow.
func VaultWorkflowID(vaultID string) string { return "vault/" + vaultID }
