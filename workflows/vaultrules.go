package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Vault names a user types (docs/contract.md section 2).
const (
	VaultWorkflowType   = "Vault"
	UpdateSetSoftDelete = "setSoftDelete"
	UpdateDeleteVault   = "deleteVault"
	QueryVaultStatus    = "status"
)

// VaultWorkflowID is the ID of a vault's workflow.
func VaultWorkflowID(vaultID string) string { return "vault/" + vaultID }

// SoftDeleteState is a vault's soft-delete setting (docs/contract.md section 4).
type SoftDeleteState string

const (
	SoftDeleteEnabled  SoftDeleteState = "Enabled"
	SoftDeleteDisabled SoftDeleteState = "Disabled"
	// SoftDeleteAlwaysOn can never be turned off again.
	SoftDeleteAlwaysOn SoftDeleteState = "AlwaysOn"
)

// DefaultPurgeReminder is how long before a purge the reminder goes out.
const DefaultPurgeReminder = 48 * time.Hour

// SoftDeleteSettings are what an item learns from its vault when it is
// deleted.
type SoftDeleteSettings struct {
	State         SoftDeleteState `json:"state"`
	RetentionDays int             `json:"retentionDays"`
	// PurgeReminder is a duration ("48h"): the reminder's lead on the purge.
	PurgeReminder string `json:"purgeReminder"`
}

// DefaultSoftDeleteSettings are a new vault's: Enabled, 14 days.
func DefaultSoftDeleteSettings() SoftDeleteSettings {
	return SoftDeleteSettings{State: SoftDeleteEnabled, RetentionDays: DefaultSoftDeleteRetentionDays, PurgeReminder: DefaultPurgeReminder.String()}
}

// reminderLead is the reminder's lead, the default when unset or invalid.
func (s SoftDeleteSettings) reminderLead() time.Duration {
	if d, err := time.ParseDuration(s.PurgeReminder); err == nil && d > 0 {
		return d
	}
	return DefaultPurgeReminder
}

// Settings belong to the worker, not to an item: they come from its flags.
type Settings struct {
	// SoftDeleteRetention, when not zero, is the worker's soft-delete
	// window: in dev mode it replaces every delete's window; otherwise it is
	// a floor, so a worker can lengthen windows but never shorten one.
	SoftDeleteRetention time.Duration
	Dev                 bool
	// StoreLocks says the store keeps objects under object lock: there a
	// vault's soft delete cannot be Disabled. ObjectLock says so in a
	// status (store.ObjectLock).
	StoreLocks bool
	ObjectLock string
}

// window is the worker's window as a delete sends it to the vault.
func (s Settings) window() windowSetting {
	return windowSetting{Window: s.SoftDeleteRetention, Replace: s.Dev}
}

// LockWindow is how long a store with object lock keeps a living item's
// objects ahead: the window a delete made now would get under the vault's
// settings now and the item's own (in, with the floor it has seen), under
// this worker's override. A delete gets at least that, so a lock never outlasts
// a deadline.
func (s Settings) LockWindow(in WindowInputs, vault SoftDeleteSettings) time.Duration {
	in.Override = s.window()
	w, _ := in.Window(vault)
	return w
}

// overrideNote says, in a status, what the worker does to windows.
func (s Settings) overrideNote() string {
	switch {
	case s.SoftDeleteRetention <= 0:
		return ""
	case s.Dev:
		return s.SoftDeleteRetention.String() + " (dev mode: replaces the soft-delete window of every delete)"
	}
	return s.SoftDeleteRetention.String() + " (worker minimum: every delete gets at least this window)"
}

// windowSetting is the worker's window as a delete sends it.
type windowSetting struct {
	Window  time.Duration `json:"window"`
	Replace bool          `json:"replace"`
}

// WindowInputs are an item's part in the soft-delete window a delete made
// now would get; the vault's settings at that moment are the other part.
// The item decides a delete with them, and the starter and the console,
// which read the vault's current settings, show the same window.
type WindowInputs struct {
	// ItemDays is the item's own window (its start input), 0 for none.
	ItemDays int `json:"itemDays,omitempty"`
	// Floor is the strongest setting the item has seen from its vault.
	Floor VaultFloor `json:"vaultFloor"`
	// Override is the worker's --soft-delete-retention, if it sets one.
	Override windowSetting `json:"override"`
}

// Window is the soft-delete window of a delete made now under the vault's
// settings vs: the longer of the vault's retention (never below the floor)
// and the item's own, then the worker's override, which replaces it in dev
// mode and is a minimum otherwise. Disabled says such a delete purges at
// once.
func (in WindowInputs) Window(vs SoftDeleteSettings) (window time.Duration, disabled bool) {
	vs = in.Floor.apply(vs)
	window = time.Duration(max(vs.RetentionDays, in.ItemDays)) * 24 * time.Hour
	switch o := in.Override; {
	case o.Window <= 0:
	case o.Replace:
		window = o.Window
	default:
		window = max(window, o.Window)
	}
	return window, vs.State == SoftDeleteDisabled
}

// WindowText says a window as people count it: "30 days", or dev mode's
// "2m0s".
func WindowText(d time.Duration) string {
	if d <= 0 {
		return "none: soft delete was off, the delete purged at once"
	}
	if d%(24*time.Hour) == 0 {
		return Plural(int(d/(24*time.Hour)), "day")
	}
	return d.String()
}

// Plural is "1 recovery point", "2 recovery points".
func Plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// WindowIfDeletedNow is the soft-delete window an item in status st would
// get from a delete made now under its vault's current settings vs; for a
// soft-deleted or purged item, the window that was applied.
func WindowIfDeletedNow(st Status, vs SoftDeleteSettings) (days int, text string, disabled bool) {
	if st.ProtectionState == SoftDeleted || st.ProtectionState == Purged || st.SoftDeleteWindowInputs == nil {
		return st.SoftDeleteRetentionDays, st.SoftDeleteWindow, false
	}
	w, disabled := st.SoftDeleteWindowInputs.Window(vs)
	return int(w / (24 * time.Hour)), WindowText(w), disabled
}

// SetSoftDeleteRequest is the payload of setSoftDelete. Zero fields keep
// the current value.
type SetSoftDeleteRequest struct {
	State         SoftDeleteState `json:"state,omitempty"`
	RetentionDays int             `json:"retentionDays,omitempty"`
	PurgeReminder string          `json:"purgeReminder,omitempty"`
	RequestedBy   string          `json:"requestedBy,omitempty"`
	Reason        string          `json:"reason,omitempty"`
	Signature
}

// ChangeSoftDelete applies a setSoftDelete request to the current settings,
// or refuses it in a sentence. It is the only place that knows the rules.
func ChangeSoftDelete(vaultID string, cur SoftDeleteSettings, req SetSoftDeleteRequest) (SoftDeleteSettings, error) {
	next := cur
	switch req.State {
	case "":
	case SoftDeleteEnabled, SoftDeleteDisabled, SoftDeleteAlwaysOn:
		next.State = req.State
	default:
		return cur, &Refusal{Message: fmt.Sprintf("soft-delete state %q is not known: use Enabled, Disabled or AlwaysOn", req.State)}
	}
	if cur.State == SoftDeleteAlwaysOn && next.State != SoftDeleteAlwaysOn {
		return cur, &Refusal{Message: fmt.Sprintf(
			"soft delete of vault %s is AlwaysOn, which is irreversible: it cannot be set to %s", vaultID, next.State)}
	}
	if req.RetentionDays != 0 {
		if req.RetentionDays < MinSoftDeleteRetentionDays || req.RetentionDays > MaxSoftDeleteRetentionDays {
			return cur, &Refusal{Message: fmt.Sprintf("retentionDays %d is out of bounds: soft-deleted data is kept %d to %d days",
				req.RetentionDays, MinSoftDeleteRetentionDays, MaxSoftDeleteRetentionDays)}
		}
		next.RetentionDays = req.RetentionDays
	}
	if req.PurgeReminder != "" {
		d, err := time.ParseDuration(req.PurgeReminder)
		if err != nil || d <= 0 {
			return cur, &Refusal{Message: fmt.Sprintf("purgeReminder %q is not a positive duration such as \"48h\"", req.PurgeReminder)}
		}
		next.PurgeReminder = d.String()
	}
	return next, nil
}

// maxNamedInRefusal bounds the items a refusal names, of each kind: a
// vault may hold many thousands.
const maxNamedInRefusal = 20

// DeleteVaultRefusal says why a vault cannot be deleted yet, naming its
// soft-deleted items and when each is purged, and its other items with
// data (the first maxNamedInRefusal of each, by ID), or is nil when it
// holds none. Items are as ListVaultItems confirms them: running, so
// holding data, whatever state they last published.
func DeleteVaultRefusal(vaultID string, items []ListedItem) error {
	rows := slices.Clone(items)
	slices.SortFunc(rows, func(a, b ListedItem) int { return strings.Compare(a.WorkflowID, b.WorkflowID) })
	prefix := WorkflowID(vaultID, "")
	var soft, other []string
	for _, it := range rows {
		id := strings.TrimPrefix(it.WorkflowID, prefix)
		switch state := State(it.ProtectionState); state {
		case SoftDeleted:
			soft = append(soft, fmt.Sprintf("%s (purge scheduled for %s)", id, it.DeferredDeleteTime.UTC().Format(time.RFC3339)))
		case "", Purged:
			// A first backup under way, or a purge not finished: data still.
			other = append(other, fmt.Sprintf("%s (%s)", id, Protected))
		default:
			other = append(other, fmt.Sprintf("%s (%s)", id, state))
		}
	}
	if len(soft) == 0 && len(other) == 0 {
		return nil
	}
	var parts []string
	if len(soft) > 0 {
		parts = append(parts, fmt.Sprintf("it holds %s: %s", Plural(len(soft), "soft-deleted item"), namedFirst(soft)))
	}
	if len(other) > 0 {
		parts = append(parts, fmt.Sprintf("it holds %s with backup data: %s", Plural(len(other), "item"), namedFirst(other)))
	}
	return &Refusal{Message: fmt.Sprintf("vault %s cannot be deleted: %s; a vault can be deleted once all its items are purged",
		vaultID, strings.Join(parts, "; "))}
}

// namedFirst joins the first maxNamedInRefusal names and says how many more.
func namedFirst(names []string) string {
	if len(names) <= maxNamedInRefusal {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more (starter list --vault shows them all)", strings.Join(names[:maxNamedInRefusal], ", "), len(names)-maxNamedInRefusal)
}
