package workflows

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/internal/searchattributes"
)

// Names a user types (docs/contract.md section 2).
const (
	TaskQueue    = "backup"
	WorkflowType = "BackupItem"

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

	QueryStatus = "status"
)

// Bounds (docs/contract.md sections 2 and 6).
const (
	DefaultSoftDeleteRetentionDays = 14
	MinSoftDeleteRetentionDays     = 14
	MaxSoftDeleteRetentionDays     = 180
	MinFrequency                   = time.Minute
	MinRetentionDays               = 1
	MaxRetentionDays               = 3650
)

// Bounds of what a message may bring into a workflow, checked before
// anything of it is kept: one oversized field copied into an audit entry,
// an alert or an activity's input would fail the workflow's task for good.
const (
	MaxPayloadBytes = 64 << 10
	MaxReasonBytes  = 1 << 10
	MaxNameBytes    = 256
	MaxPathBytes    = 4 << 10
	// MaxDetailBytes bounds an audit entry's or an alert's detail: a
	// sentence and a reason.
	MaxDetailBytes = 2 << 10
)

// fieldBounds are the bounds of a message's fields by name, wherever they
// are in it; any other field is bounded by the payload's.
var fieldBounds = map[string]int{
	"requestedBy": MaxNameBytes, "approvedBy": MaxNameBytes, "vaultId": MaxNameBytes, "itemId": MaxNameBytes,
	"recoveryPointId": MaxNameBytes, "requestId": MaxNameBytes, "incarnation": MaxNameBytes,
	"reason":     MaxReasonBytes,
	"targetPath": MaxPathBytes, "sourcePath": MaxPathBytes,
}

// payloadBound is the bound of a message's whole payload: an item's delete
// asking its vault carries the delete's own payload inside its own.
func payloadBound(name string) int {
	if name == UpdateItemDelete {
		return 2 * MaxPayloadBytes
	}
	return MaxPayloadBytes
}

// checkBounds refuses a JSON message over its bounds, in a sentence that
// quotes none of it.
func checkBounds(name string, data []byte) error {
	if n, bound := len(data), payloadBound(name); n > bound {
		return fmt.Errorf("%s payload of %d bytes is over its bound of %d KiB: nothing of it was kept; send less", name, n, bound>>10)
	}
	var fields any
	if json.Unmarshal(data, &fields) != nil {
		return nil // the decoder says what is wrong
	}
	return fieldsWithin(name, fields)
}

func fieldsWithin(name string, v any) error {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range workflow.DeterministicKeys(v) {
			if s, ok := v[k].(string); ok {
				if bound, ok := fieldBounds[k]; ok && len(s) > bound {
					return fmt.Errorf("%s: %q of %d bytes is over its bound of %d bytes: send a shorter one", name, k, len(s), bound)
				}
			}
			if err := fieldsWithin(name, v[k]); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range v {
			if err := fieldsWithin(name, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// Clip cuts s to at most n bytes on a character boundary, marking the cut.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "..."
	cut := max(n-len(mark), 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// Search attributes, registered on every server the worker talks to.
var (
	VaultIDAttribute  = temporal.NewSearchAttributeKeyKeyword(searchattributes.VaultID)
	StateAttribute    = temporal.NewSearchAttributeKeyKeyword(searchattributes.State)
	DeadlineAttribute = temporal.NewSearchAttributeKeyTime(searchattributes.Deadline)
)

// WorkflowID is the ID of an item's workflow.
func WorkflowID(vaultID, itemID string) string {
	return "backup-item/" + vaultID + "/" + itemID
}

// ItemsQuery is the visibility query of a vault's items ("" for every
// vault) in a state, each item at most once. With no state it lists the
// items that exist, those whose workflow is running and not purged (and so
// hold data); Purged lists the runs that ended in a purge. A run that continued as new,
// or an item refused at its first backup (its workflow failed before it
// published anything), is never listed. The IDs must be valid.
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

// Policy is an item's backup policy.
type Policy struct {
	// Frequency is a Go duration ("24h", "90m") or whole days ("1d").
	Frequency     string `json:"frequency"`
	RetentionDays int    `json:"retentionDays"`
}

// ItemInput starts a BackupItem. State is set only by continue-as-new.
type ItemInput struct {
	VaultID    string `json:"vaultId"`
	ItemID     string `json:"itemId"`
	SourcePath string `json:"sourcePath"`
	Policy     Policy `json:"policy"`
	// SoftDeleteRetentionDays is the window a delete gets; 0 means 14.
	SoftDeleteRetentionDays int        `json:"softDeleteRetentionDays,omitempty"`
	State                   *ItemState `json:"state,omitempty"`
}

// Request is the payload of stop, delete, undelete and resume.
type Request struct {
	RequestedBy string `json:"requestedBy,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// Signature is required on a delete, and on deleteVault, by a vault
	// that holds allowed signers.
	Signature
}

// RestoreRequest is the payload of the restore update.
type RestoreRequest struct {
	RecoveryPointID string `json:"recoveryPointId"`
	TargetPath      string `json:"targetPath"`
	RequestedBy     string `json:"requestedBy,omitempty"`
}

// Status is the answer of the status query and of every update.
type Status struct {
	VaultID                      string `json:"vaultId"`
	ItemID                       string `json:"itemId"`
	SourcePath                   string `json:"sourcePath"`
	Policy                       Policy `json:"policy"`
	ProtectionState              State  `json:"protectionState"`
	IsScheduledForDeferredDelete bool   `json:"isScheduledForDeferredDelete"`
	DeferredDeleteTimeInUTC      string `json:"deferredDeleteTimeInUTC"`
	DeferredDeleteTimeRemaining  string `json:"deferredDeleteTimeRemaining"`
	// SoftDeleteRetentionDays and SoftDeleteWindow are the window that
	// applies: while soft-deleted (or purged), the one the delete got;
	// before, the one a delete made now would get, as far as the item knows
	// its vault's settings (WindowIfDeletedNow adds the vault's current
	// ones, as the starter and the console show it).
	SoftDeleteRetentionDays int    `json:"softDeleteRetentionDays"`
	SoftDeleteWindow        string `json:"softDeleteWindow"`
	// SoftDeleteWindowInputs are the item's part of that window, before a
	// delete.
	SoftDeleteWindowInputs *WindowInputs `json:"softDeleteWindowInputs,omitempty"`
	// SoftDeleteRetentionOverride says that the worker replaces every
	// delete's window (dev mode's --soft-delete-retention).
	SoftDeleteRetentionOverride string          `json:"softDeleteRetentionOverride,omitempty"`
	LastBackupTime              string          `json:"lastBackupTime"`
	RecoveryPoints              []RecoveryPoint `json:"recoveryPoints"`
	Audit                       []AuditEntry    `json:"audit"`
	// ObjectLock says how the store keeps the item's objects against
	// deletion, on a bucket; ObjectsLockedUntil, until when, where it
	// locks them.
	ObjectLock         string `json:"objectLock,omitempty"`
	ObjectsLockedUntil string `json:"objectsLockedUntil,omitempty"`
	// PendingApproval is in the answer to a delete that waits for approval.
	PendingApproval *MuaRequest `json:"pendingApproval,omitempty"`
	// PendingDelete is a delete waiting for its vault to answer.
	PendingDelete *PendingDelete `json:"pendingDelete,omitempty"`
	// ConfirmingApproval is an approval received whose vault could not
	// confirm it yet, asked again until it does.
	ConfirmingApproval *ConfirmingApproval `json:"confirmingApproval,omitempty"`
}

// ConfirmingApproval is an approval waiting for its vault's confirmation.
type ConfirmingApproval struct {
	RequestID  string `json:"requestId"`
	ApprovedBy string `json:"approvedBy"`
	Attempts   int    `json:"attempts"`
	Why        string `json:"why"`
}

// FormatRemaining renders a duration as the contract's "13d 23h 59m".
func FormatRemaining(d time.Duration) string {
	switch {
	case d <= 0:
		return "0m"
	case d < time.Minute:
		// Only dev mode's short windows get here.
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	d = d.Truncate(time.Minute)
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	hours := d / time.Hour
	d -= hours * time.Hour
	mins := d / time.Minute
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh %dm", days, hours, mins)
	case hours > 0:
		return fmt.Sprintf("%dh %dm", hours, mins)
	}
	return fmt.Sprintf("%dm", mins)
}

// ParseFrequency accepts Go durations and whole days ("7d").
func ParseFrequency(s string) (time.Duration, error) {
	if s == "" {
		return 0, errors.New(`policy.frequency is missing: give a duration such as "24h" or "1d"`)
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("policy.frequency %q is not a duration: use a form such as \"24h\", \"90m\" or \"1d\"", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("policy.frequency %q is not a duration: use a form such as \"24h\", \"90m\" or \"1d\"", s)
	}
	return d, nil
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

// Validate checks a start input and fills in defaults. It returns the first
// problem in words for the person who started the item.
func (in *ItemInput) Validate() error {
	if err := ValidateID("vaultId", in.VaultID); err != nil {
		return err
	}
	if err := ValidateID("itemId", in.ItemID); err != nil {
		return err
	}
	if in.SourcePath == "" {
		return errors.New("sourcePath is missing: give the directory to back up")
	}
	if !filepath.IsAbs(in.SourcePath) {
		return fmt.Errorf("sourcePath %q is not absolute: the worker resolves paths on its own machine, so give an absolute path", in.SourcePath)
	}
	freq, err := ParseFrequency(in.Policy.Frequency)
	if err != nil {
		return err
	}
	if freq < MinFrequency {
		return fmt.Errorf("policy.frequency %s is too short: backups run at most once a minute", in.Policy.Frequency)
	}
	if in.Policy.RetentionDays < MinRetentionDays {
		return fmt.Errorf("policy.retentionDays %d is too short: keep recovery points for at least %d day", in.Policy.RetentionDays, MinRetentionDays)
	}
	if in.Policy.RetentionDays > MaxRetentionDays {
		return fmt.Errorf("policy.retentionDays %d is too long: keep recovery points for at most %d days (ten years)", in.Policy.RetentionDays, MaxRetentionDays)
	}
	if len(in.SourcePath) > MaxPathBytes {
		return fmt.Errorf("sourcePath of %d bytes is over its bound of %d bytes", len(in.SourcePath), MaxPathBytes)
	}
	if in.SoftDeleteRetentionDays == 0 {
		in.SoftDeleteRetentionDays = DefaultSoftDeleteRetentionDays
	}
	if in.SoftDeleteRetentionDays < MinSoftDeleteRetentionDays || in.SoftDeleteRetentionDays > MaxSoftDeleteRetentionDays {
		return fmt.Errorf("softDeleteRetentionDays %d is out of bounds: soft-deleted data is kept %d to %d days",
			in.SoftDeleteRetentionDays, MinSoftDeleteRetentionDays, MaxSoftDeleteRetentionDays)
	}
	return nil
}

// DecodeRequest reads a stop/delete/undelete/resume payload exactly as the
// Temporal CLI sends it: none at all, null, {} or an object of known fields.
func DecodeRequest(name string, raw converter.RawValue) (Request, error) {
	var r Request
	err := decodePayload(name, raw, &r, `{"requestedBy": "alice", "reason": "decommissioned"}`)
	return r, err
}

// DecodeRestoreRequest reads and checks a restore payload.
func DecodeRestoreRequest(raw converter.RawValue) (RestoreRequest, error) {
	var r RestoreRequest
	example := `{"recoveryPointId": "rp-...", "targetPath": "/restore/vm1", "requestedBy": "alice"}`
	if err := decodePayload(UpdateRestore, raw, &r, example); err != nil {
		return r, err
	}
	if r.RecoveryPointID == "" {
		return r, fmt.Errorf("restore needs a recoveryPointId: the status query lists them; payload like %s", example)
	}
	if r.TargetPath == "" || !filepath.IsAbs(r.TargetPath) {
		return r, fmt.Errorf("restore needs an absolute targetPath (an empty or absent directory on the worker), got %q", r.TargetPath)
	}
	return r, nil
}

func decodePayload(name string, raw converter.RawValue, into any, example string) error {
	p := raw.Payload()
	if p == nil {
		return nil
	}
	switch enc := string(p.GetMetadata()[converter.MetadataEncoding]); enc {
	case converter.MetadataEncodingNil:
		return nil
	case converter.MetadataEncodingJSON:
	default:
		return fmt.Errorf("%s payload has encoding %q: send a JSON object like %s", name, enc, example)
	}
	data := bytes.TrimSpace(p.GetData())
	if bytes.Equal(data, []byte("null")) {
		return nil
	}
	if len(data) == 0 || data[0] != '{' {
		return fmt.Errorf("%s payload %s is not a JSON object: send one like %s, or nothing", name, clip(data), example)
	}
	if err := checkBounds(name, data); err != nil {
		return err
	}
	if err := decodeJSON(data, into); err != nil {
		return fmt.Errorf("%s payload %s does not fit: %v; send one like %s", name, clip(data), err, example)
	}
	return nil
}

// decodeJSON reads a JSON object of known fields only.
func decodeJSON(data []byte, into any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(into)
}

// payloadData is a payload's JSON text, nil for none: what a signature
// covers, field for field.
func payloadData(raw converter.RawValue) []byte {
	p := raw.Payload()
	if p == nil || string(p.GetMetadata()[converter.MetadataEncoding]) != converter.MetadataEncodingJSON {
		return nil
	}
	return bytes.TrimSpace(p.GetData())
}

// signedInput is a person's request as sent, kept for its signature's
// check only when it is signed: the rest of it is already in the event.
func signedInput(raw converter.RawValue) []byte {
	data := payloadData(raw)
	var sig Signature
	if json.Unmarshal(data, &sig) != nil || sig.Signature == "" {
		return nil
	}
	return data
}

func clip(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}
