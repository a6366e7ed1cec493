package protocol

import (
	"fmt"
	"strings"
	"time"

	"recoveryvault/internal/signing"
)

// EnableMuaRequest is the payload of enableMua. "enabled": false turns
// multi-user authorization off, which is itself a critical operation.
type EnableMuaRequest struct {
	Enabled        *bool    `json:"enabled,omitempty"`
	Approvers      []string `json:"approvers,omitempty"`
	ApprovalWindow string   `json:"approvalWindow,omitempty"`
	RequestedBy    string   `json:"requestedBy,omitempty"`
	Reason         string   `json:"reason,omitempty"`
	signing.Signature
}

// VaultFloor is the strongest soft-delete setting and protection an item
// has seen from its vault: a vault started anew cannot lower it.
type VaultFloor struct {
	AlwaysOn      bool   `json:"alwaysOn,omitempty"`
	RetentionDays int    `json:"retentionDays,omitempty"`
	Mua           bool   `json:"mua,omitempty"`
	Signers       string `json:"signers,omitempty"`
	Vault         string `json:"vault,omitempty"`
}

// Protection is what a vault requires of a delete now, in which
// incarnation.
type Protection struct {
	Mua         bool   `json:"mua,omitempty"`
	Signers     string `json:"signers,omitempty"`
	Incarnation string `json:"incarnation"`
}

// See takes what the vault requires now; a new incarnation only once it
// requires at least what the item saw.
func (f *VaultFloor) See(p Protection) {
	if f.Vault == "" || f.Vault == p.Incarnation || f.Weakened("", p) == "" {
		f.Mua, f.Signers, f.Vault = p.Mua, p.Signers, p.Incarnation
	}
}

// Weakened says why vault vaultID, started anew since the item saw it,
// requires less of a delete than it did; "" when it does not.
func (f VaultFloor) Weakened(vaultID string, p Protection) string {
	if f.Vault == "" || p.Incarnation == "" || f.Vault == p.Incarnation {
		return ""
	}
	var lost []string
	if f.Mua && !p.Mua {
		lost = append(lost, "multi-user authorization")
	}
	if f.Signers != "" && p.Signers != f.Signers {
		lost = append(lost, "the allowed signers it held")
	}
	if len(lost) == 0 {
		return ""
	}
	return fmt.Sprintf("vault %s was started anew (terminated or reset) and no longer requires %s: the delete waits until the vault requires it again",
		vaultID, strings.Join(lost, " or "))
}

// Raise lifts the floor to what settings s demand.
func (f *VaultFloor) Raise(s SoftDeleteSettings) {
	f.AlwaysOn = f.AlwaysOn || s.State == SoftDeleteAlwaysOn
	f.RetentionDays = max(f.RetentionDays, s.RetentionDays)
}

// apply never lets settings fall below the floor.
func (f VaultFloor) apply(s SoftDeleteSettings) SoftDeleteSettings {
	if f.AlwaysOn {
		s.State = SoftDeleteAlwaysOn
	}
	s.RetentionDays = max(s.RetentionDays, f.RetentionDays)
	return s
}

// SetMassDeleteGuardRequest is the payload of setMassDeleteGuard; zero
// fields keep the current value.
type SetMassDeleteGuardRequest struct {
	Enabled     *bool  `json:"enabled,omitempty"`
	Threshold   int    `json:"threshold,omitempty"`
	Window      string `json:"window,omitempty"`
	RequestedBy string `json:"requestedBy,omitempty"`
	Reason      string `json:"reason,omitempty"`
	signing.Signature
}

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

// ReminderLead is the reminder's lead, the default when unset or invalid.
func (s SoftDeleteSettings) ReminderLead() time.Duration {
	if d, err := time.ParseDuration(s.PurgeReminder); err == nil && d > 0 {
		return d
	}
	return DefaultPurgeReminder
}

// Settings belong to the worker, not to an item: they come from its flags.
type Settings struct {
	// SoftDeleteRetention replaces every window in dev mode, and is a floor
	// otherwise.
	SoftDeleteRetention time.Duration
	Dev                 bool
	// StoreLocks says the store locks objects (soft delete cannot be
	// Disabled there); ObjectLock says how, in a status.
	StoreLocks bool
	ObjectLock string
}

// Override is the worker's retention as a delete sends it to the vault.
func (s Settings) Override() RetentionOverride {
	return RetentionOverride{Window: s.SoftDeleteRetention, Replace: s.Dev}
}

// LockWindow is how far ahead a living item's objects are locked: the
// window a delete made now would get, so a lock never outlasts a deadline.
func (s Settings) LockWindow(in WindowInputs, vault SoftDeleteSettings) time.Duration {
	in.Override = s.Override()
	w, _ := in.Window(vault)
	return w
}

// OverrideNote says, in a status, what the worker does to windows.
func (s Settings) OverrideNote() string {
	switch {
	case s.SoftDeleteRetention <= 0:
		return ""
	case s.Dev:
		return s.SoftDeleteRetention.String() + " (dev mode: replaces the soft-delete window of every delete)"
	}
	return s.SoftDeleteRetention.String() + " (worker minimum: every delete gets at least this window)"
}

// RetentionOverride is the worker's soft-delete retention as a delete
// sends it: a floor, or in dev mode what replaces every window.
type RetentionOverride struct {
	Window  time.Duration `json:"window"`
	Replace bool          `json:"replace"`
}

// WindowInputs are an item's part in the window a delete made now would
// get; the vault's settings are the other part.
type WindowInputs struct {
	// ItemDays is the item's own window (its start input), 0 for none.
	ItemDays int `json:"itemDays,omitempty"`
	// Floor is the strongest setting the item has seen from its vault.
	Floor VaultFloor `json:"vaultFloor"`
	// Override is the worker's --soft-delete-retention, if it sets one.
	Override RetentionOverride `json:"override"`
}

// Window is the soft-delete window of a delete made now under settings vs,
// and whether such a delete purges at once.
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

// SetSoftDeleteRequest is the payload of setSoftDelete. Zero fields keep
// the current value.
type SetSoftDeleteRequest struct {
	State         SoftDeleteState `json:"state,omitempty"`
	RetentionDays int             `json:"retentionDays,omitempty"`
	PurgeReminder string          `json:"purgeReminder,omitempty"`
	RequestedBy   string          `json:"requestedBy,omitempty"`
	Reason        string          `json:"reason,omitempty"`
	signing.Signature
}

// SetAllowedSignersRequest is the payload of setAllowedSigners: the text of
// an allowed_signers file, empty to remove them.
type SetAllowedSignersRequest struct {
	AllowedSigners string `json:"allowedSigners"`
	RequestedBy    string `json:"requestedBy,omitempty"`
	Reason         string `json:"reason,omitempty"`
	signing.Signature
}
