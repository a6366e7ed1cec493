package vault

import (
	"fmt"
	"slices"
	"time"

	"recoveryvault/workflows/protocol"
)

// The mass-delete guard: past its threshold of deletes within its period,
// a vault alerts and holds every further delete until the hold is cleared.
const (
	UpdateSetMassDeleteGuard  = "setMassDeleteGuard"
	UpdateClearMassDeleteHold = "clearMassDeleteHold"
	// AlertMassDelete says a vault holds deletes.
	AlertMassDelete = "massDelete"
)

// Defaults of the mass-delete guard.
const (
	DefaultMassDeleteThreshold = 10
	// massDeleteShare is the share of a vault's items the default threshold
	// grows to, in percent.
	massDeleteShare         = 5
	DefaultMassDeleteWindow = 10 * time.Minute
	MinMassDeleteWindow     = time.Minute
	MaxMassDeleteWindow     = 7 * 24 * time.Hour
	maxMassDeleteThreshold  = 1_000_000
	massDeleteExample       = `{"enabled": true, "threshold": 10, "window": "10m", "requestedBy": "alice"}`
)

// MassDeleteGuard is a vault's guard setting; the zero value is on, at the
// larger of 10 and 5% of the items, within 10 minutes.
type MassDeleteGuard struct {
	Off bool `json:"off,omitempty"`
	// Threshold is how many deletes a window lets through; 0 is the default.
	Threshold int `json:"threshold,omitempty"`
	// Window is a duration ("10m"); empty is the default.
	Window string `json:"window,omitempty"`
}

// period is how far back the guard counts deletes.
func (g MassDeleteGuard) period() time.Duration {
	if d, err := time.ParseDuration(g.Window); err == nil && d > 0 {
		return d
	}
	return DefaultMassDeleteWindow
}

// threshold is the deletes a window lets through, for a vault of items.
func (g MassDeleteGuard) threshold(items int) int {
	if g.Threshold > 0 {
		return g.Threshold
	}
	return max(DefaultMassDeleteThreshold, items*massDeleteShare/100)
}

func (g MassDeleteGuard) String() string {
	if g.Off {
		return "mass-delete guard off"
	}
	threshold := fmt.Sprintf("the larger of %d deletes and %d%% of the items", DefaultMassDeleteThreshold, massDeleteShare)
	if g.Threshold > 0 {
		threshold = protocol.Plural(g.Threshold, "delete")
	}
	return fmt.Sprintf("mass-delete guard on: after %s within %s, further deletes are held", threshold, g.period())
}

// MassDeleteState is what the guard has seen: the deletes within its
// window, and the hold once they passed the threshold.
type MassDeleteState struct {
	// Recent counts the deletes let through in at most guardSlots+1 slots,
	// so what the vault carries stays the same size however many come.
	Recent []DeleteSlot `json:"recent,omitempty"`
	// Hold is since when the vault holds deletes, and when it was last
	// cleared.
	protocol.Hold
}

// DeleteSlot counts the deletes let through from Start, for one slot.
type DeleteSlot struct {
	Start time.Time `json:"start"`
	Count int       `json:"count"`
}

// guardSlots is how many slots a window is cut into.
const guardSlots = 60

// slot is the length of one slot of the window.
func (g MassDeleteGuard) slot() time.Duration { return g.period() / guardSlots }

// MassDeleteGuardStatus is the guard in a vault's status.
type MassDeleteGuardStatus struct {
	Enabled bool `json:"enabled"`
	// Threshold and Window are the ones that apply now.
	Threshold int    `json:"threshold"`
	Window    string `json:"window"`
	Summary   string `json:"summary"`
	// HeldSince is set while the vault holds deletes.
	HeldSince time.Time `json:"heldSince,omitzero"`
}

// ChangeMassDeleteGuard applies a request to the current guard, or refuses
// it in a sentence.
func ChangeMassDeleteGuard(cur MassDeleteGuard, req protocol.SetMassDeleteGuardRequest) (MassDeleteGuard, error) {
	next := cur
	if req.Enabled != nil {
		next.Off = !*req.Enabled
	}
	if req.Threshold != 0 {
		if req.Threshold < 1 || req.Threshold > maxMassDeleteThreshold {
			return cur, protocol.FieldRefusal(protocol.CodeOutOfBounds, "threshold", "threshold %d is not a number of deletes from 1 to %d", req.Threshold, maxMassDeleteThreshold)
		}
		next.Threshold = req.Threshold
	}
	if req.Window != "" {
		d, err := time.ParseDuration(req.Window)
		if err != nil || d < MinMassDeleteWindow || d > MaxMassDeleteWindow {
			return cur, protocol.FieldRefusal(protocol.CodeOutOfBounds, "window", "window %q is not a duration from %s to %s, such as \"10m\"", req.Window, MinMassDeleteWindow, protocol.FormatRemaining(MaxMassDeleteWindow))
		}
		next.Window = d.String()
	}
	return next, nil
}

// LooserMassDeleteGuard is true for a change that lets more deletes
// through: critical, as weakening soft delete is.
func LooserMassDeleteGuard(cur, next MassDeleteGuard, items int) bool {
	return (next.Off && !cur.Off) || next.threshold(items) > cur.threshold(items) || next.period() < cur.period()
}

// forget drops the slots that have left the window and counts the rest.
func (m *MassDeleteState) forget(now time.Time, g MassDeleteGuard) int {
	m.Recent = slices.DeleteFunc(m.Recent, func(s DeleteSlot) bool { return !now.Before(s.Start.Add(g.slot() + g.period())) })
	n := 0
	for _, s := range m.Recent {
		n += s.Count
	}
	return n
}

// count records a delete let through at now.
func (m *MassDeleteState) count(now time.Time, g MassDeleteGuard) {
	start := now.Truncate(g.slot())
	if last := len(m.Recent) - 1; last >= 0 && m.Recent[last].Start.Equal(start) {
		m.Recent[last].Count++
		return
	}
	m.Recent = append(m.Recent, DeleteSlot{Start: start, Count: 1})
}
