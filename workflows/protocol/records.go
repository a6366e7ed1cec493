package protocol

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// SoftDeletedDetail says what a delete did, for the audit and the alert.
func SoftDeletedDetail(deadline time.Time) string {
	return "soft-deleted; purge scheduled for " + FormatTime(deadline) + " unless undeleted"
}

func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

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

// The records an item and a vault keep in their state and show in their
// status: recovery points, alerts and the audit trail.

// RecoveryPoint is one backup of an item.
type RecoveryPoint struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	// SizeBytes is the logical size of the tree backed up.
	SizeBytes int64 `json:"sizeBytes"`
	// NewBytes is what this point added to the store, after deduplication
	// and compression.
	NewBytes int64 `json:"newBytes"`
	// SHA256 is the recovery point's content hash: every restore is checked
	// against it before anything reaches the target.
	SHA256 string `json:"sha256"`
	// Change is what the backup changed against the point before; nil for
	// an item's first.
	Change *Change `json:"change,omitempty"`
	// Suspect says why the change is abnormal; Accepted, who cleared the
	// anomaly and why. A point accepted is known good from then on.
	Suspect  string `json:"suspect,omitempty"`
	Accepted string `json:"accepted,omitempty"`
	// CheckedAt is when a restore drill last read the point back; Verified
	// says it read back whole, VerifyFailed why it did not.
	CheckedAt    time.Time `json:"checkedAt,omitzero"`
	Verified     bool      `json:"verified,omitempty"`
	VerifyFailed string    `json:"verifyFailed,omitempty"`
	// Fresh says the backup read every file again and wrote anew what a
	// drill had found damaged, where the source still held it.
	Fresh bool `json:"fresh,omitempty"`
}

// Alert kinds (docs/contract.md section 4).
const (
	AlertSoftDeleted      = "softDeleted"
	AlertPurgeReminder    = "purgeReminder"
	AlertPurged           = "purged"
	AlertUndeleted        = "undeleted"
	AlertCriticalRejected = "criticalOperationRejected"
	// AlertApprovalRequested tells approvers that a critical operation waits.
	AlertApprovalRequested = "approvalRequested"
	// AlertForbiddenCaller is an activity scheduled by a workflow it does not
	// serve: someone reached around an item's workflow.
	AlertForbiddenCaller = "forbiddenCaller"
	// AlertLockFailed is an item whose objects the store could not lock
	// as they must be; it is tried again every hour until it holds.
	AlertLockFailed = "lockFailed"
	// AlertAnomaly is a backup whose change looks like ransomware: the
	// points before it are kept and deletes wait until clearAnomaly.
	AlertAnomaly = "anomaly"
	// AlertVerifyFailed is a recovery point a restore drill could not read
	// back as it was backed up.
	AlertVerifyFailed = "verifyFailed"
	// AlertTamper is an item whose objects someone else hid or overwrote.
	AlertTamper = "tamper"
	// AlertVaultRestarted is a vault started anew that requires less than an
	// item saw: its deletes wait.
	AlertVaultRestarted = "vaultRestarted"
	// AlertItemRestarted is an item started anew over the recovery points
	// an earlier run of it left in the store: it was terminated or reset.
	AlertItemRestarted = "itemRestarted"
)

// Alert is one notification about a vault or an item.
type Alert struct {
	Kind        string    `json:"kind"`
	VaultID     string    `json:"vaultId"`
	ItemID      string    `json:"itemId,omitempty"`
	RequestedBy string    `json:"requestedBy,omitempty"`
	Time        time.Time `json:"time"`
	PurgeTime   time.Time `json:"purgeTime,omitzero"`
	Detail      string    `json:"detail,omitempty"`
	// Signer is the key that signed the operation, or "unsigned".
	Signer string `json:"signer,omitempty"`
	// More counts the alerts of its kind folded into this one.
	More int `json:"more,omitempty"`
}

// AuditEntry records one operation on an item or a vault.
type AuditEntry struct {
	Time        time.Time `json:"time"`
	Operation   string    `json:"operation"`
	RequestedBy string    `json:"requestedBy"`
	Outcome     string    `json:"outcome"`
	Detail      string    `json:"detail"`
	// Signer is the verified key of a signed operation, or "unsigned".
	Signer string `json:"signer,omitempty"`
}

// Audit outcomes.
const (
	OutcomeAccepted = "accepted"
	OutcomeRejected = "rejected"
	OutcomeFailed   = "failed"
	// OutcomePending is a critical operation that waits for approval.
	OutcomePending = "pending approval"
	// OutcomeWaiting is a delete that waits for its vault to answer.
	OutcomeWaiting = "waiting for the vault"
)

// MaxAuditEntries bounds the audit kept in state; the full record is the
// event history.
const MaxAuditEntries = 100

// NoChange starts the detail of an accepted operation that changed nothing.
const NoChange = "no change: "

// AppendAudit adds an entry within the bound; rejected and no-op entries go
// first, so a flood cannot push a real operation out.
func AppendAudit(list []AuditEntry, e AuditEntry) []AuditEntry {
	e.RequestedBy, e.Detail = Clip(e.RequestedBy, MaxNameBytes), Clip(e.Detail, MaxDetailBytes)
	list = append(list, e)
	for len(list) > MaxAuditEntries {
		i := slices.IndexFunc(list, func(e AuditEntry) bool {
			return e.Outcome == OutcomeRejected || strings.HasPrefix(e.Detail, NoChange)
		})
		if i < 0 {
			i = 0
		}
		list = slices.Delete(list, i, i+1)
	}
	return list
}

// Bounded is the alert with its free text cut to its bounds: what it says
// comes from messages, and it is carried in workflow state.
func (a Alert) Bounded() Alert {
	a.RequestedBy, a.Signer, a.Detail = Clip(a.RequestedBy, MaxNameBytes), Clip(a.Signer, MaxNameBytes), Clip(a.Detail, MaxDetailBytes)
	return a
}

// Plural is "1 recovery point", "2 recovery points".
func Plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
