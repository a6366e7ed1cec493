package vault

import (
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/internal/signing"
	"recoveryvault/workflows/protocol"
)

// The mass-delete guard: a vault that sees more deletes than a threshold
// within a window, as ransomware with stolen credentials would send them,
// alerts and holds every further delete until its hold is cleared, or, with
// multi-user authorization on, until an approver releases each one.
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

// MassDeleteGuard is a vault's guard setting. The zero value is the
// default: on, threshold the larger of 10 and 5% of the vault's items,
// window 10 minutes.
type MassDeleteGuard struct {
	Off bool `json:"off,omitempty"`
	// Threshold is how many deletes a window lets through; 0 is the default.
	Threshold int `json:"threshold,omitempty"`
	// Window is a duration ("10m"); empty is the default.
	Window string `json:"window,omitempty"`
}

func (g MassDeleteGuard) window() time.Duration {
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
	return fmt.Sprintf("mass-delete guard on: after %s within %s, further deletes are held", threshold, g.window())
}

// MassDeleteState is what the guard has seen: the deletes within its
// window, and the hold once they passed the threshold.
type MassDeleteState struct {
	// Recent counts the deletes let through within the window, in at most
	// guardSlots+1 slots of a slot's length each (the window's, and the one
	// now under way): however many deletes come,
	// what the vault carries stays the same size. A delete is forgotten
	// once its whole slot has left the window, so up to a slot later than
	// its own time: the guard errs towards holding.
	Recent []DeleteSlot `json:"recent,omitempty"`
	// HeldSince is when the vault started holding deletes; zero while not.
	HeldSince time.Time `json:"heldSince,omitzero"`
	// ReleasedUntil is when the hold was last cleared: a delete its item
	// received before then was let through by the clear, and is not
	// counted or held again when its item asks once more.
	ReleasedUntil time.Time `json:"releasedUntil,omitzero"`
}

// DeleteSlot counts the deletes let through from Start, for one slot.
type DeleteSlot struct {
	Start time.Time `json:"start"`
	Count int       `json:"count"`
}

// guardSlots is how many slots a window is cut into.
const guardSlots = 60

// slot is the length of one slot of the window.
func (g MassDeleteGuard) slot() time.Duration { return g.window() / guardSlots }

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
			return cur, &protocol.Refusal{Message: fmt.Sprintf("threshold %d is not a number of deletes from 1 to %d", req.Threshold, maxMassDeleteThreshold)}
		}
		next.Threshold = req.Threshold
	}
	if req.Window != "" {
		d, err := time.ParseDuration(req.Window)
		if err != nil || d < MinMassDeleteWindow || d > MaxMassDeleteWindow {
			return cur, &protocol.Refusal{Message: fmt.Sprintf("window %q is not a duration from %s to %s, such as \"10m\"", req.Window, MinMassDeleteWindow, protocol.FormatRemaining(MaxMassDeleteWindow))}
		}
		next.Window = d.String()
	}
	return next, nil
}

// LooserMassDeleteGuard is true for a change that lets more deletes
// through: turning the guard off, a higher threshold or a shorter window.
// It is critical, as weakening soft delete is.
func LooserMassDeleteGuard(cur, next MassDeleteGuard, items int) bool {
	return (next.Off && !cur.Off) || next.threshold(items) > cur.threshold(items) || next.window() < cur.window()
}

func (v *vault) setMassDeleteGuard(ctx workflow.Context, req protocol.SetMassDeleteGuardRequest, input []byte) (VaultStatus, error) {
	if err := v.ready(ctx); err != nil {
		return VaultStatus{}, err
	}
	who := actor{by: protocol.Requester(req.RequestedBy)}
	next, err := ChangeMassDeleteGuard(v.st.Guard, req)
	if err != nil {
		v.refuse(ctx, UpdateSetMassDeleteGuard, who, err)
		return VaultStatus{}, protocol.Refused(err)
	}
	critical := LooserMassDeleteGuard(v.st.Guard, next, v.itemCount(ctx))
	if who, err = v.signedBy(ctx, UpdateSetMassDeleteGuard, input, who, critical); err != nil {
		return VaultStatus{}, err
	}
	if v.st.Mua.Enabled && critical {
		req.Signature = signing.Signature{}
		return v.openRequest(ctx, protocol.MuaRequest{Operation: UpdateSetMassDeleteGuard, RequestedBy: who.by, Signer: who.signer,
			Reason: req.Reason, Guard: &req, Summary: "set the " + next.String()})
	}
	v.changeGuard(ctx, who, next, req.Reason)
	return v.status(), nil
}

func (v *vault) changeGuard(ctx workflow.Context, who actor, next MassDeleteGuard, reason string) {
	detail := next.String() + " (was " + v.st.Guard.String() + ")"
	if reason != "" {
		detail += "; reason: " + reason
	}
	v.st.Guard = next
	if next.Off {
		// Nothing holds deletes any more.
		v.st.MassDelete.HeldSince = time.Time{}
	}
	v.audit(ctx, UpdateSetMassDeleteGuard, who, protocol.OutcomeAccepted, detail)
	v.version++
}

// clearMassDeleteHold releases the vault's held deletes: each is let
// through at its item's next try. It is critical: signed, and under
// multi-user authorization approved by a second person.
func (v *vault) clearMassDeleteHold(ctx workflow.Context, req protocol.Request, input []byte) (VaultStatus, error) {
	if err := v.ready(ctx); err != nil {
		return VaultStatus{}, err
	}
	who, err := v.signedBy(ctx, UpdateClearMassDeleteHold, input, actor{by: protocol.Requester(req.RequestedBy)}, true)
	if err != nil {
		return VaultStatus{}, err
	}
	if v.st.MassDelete.HeldSince.IsZero() {
		err := &protocol.Refusal{Message: fmt.Sprintf("vault %s holds no deletes: there is nothing to clear", v.id)}
		v.refuse(ctx, UpdateClearMassDeleteHold, who, err)
		return VaultStatus{}, protocol.Refused(err)
	}
	if v.st.Mua.Enabled {
		return v.openRequest(ctx, protocol.MuaRequest{Operation: UpdateClearMassDeleteHold, RequestedBy: who.by, Signer: who.signer,
			Reason: req.Reason, Summary: "clear the mass-delete hold: let the held deletes through"})
	}
	v.clearHold(ctx, who, req.Reason)
	return v.status(), nil
}

func (v *vault) clearHold(ctx workflow.Context, who actor, reason string) {
	detail := fmt.Sprintf("mass-delete hold cleared: the deletes held since %s are let through at their items' next try (within %s), uncounted; the guard counts later ones afresh",
		protocol.FormatTime(v.st.MassDelete.HeldSince), protocol.MaxHeldDeleteRetry)
	if reason != "" {
		detail += "; reason: " + reason
	}
	v.st.MassDelete = MassDeleteState{ReleasedUntil: workflow.Now(ctx).UTC()}
	v.audit(ctx, UpdateClearMassDeleteHold, who, protocol.OutcomeAccepted, detail)
	v.version++
}

// guardDelete counts a delete about to be let through, and holds it when
// the window has let the threshold through already. The first delete held
// raises the massDelete alert. It returns why a held delete waits. A
// delete its item received before the hold was last cleared (receivedAt)
// was released by the clear: it goes through uncounted. Only an item's
// own delete reaches the item's data; a client that forges receivedAt in
// an itemDelete of its own gets an answer and nothing else.
func (v *vault) guardDelete(ctx workflow.Context, itemID string, who actor, receivedAt time.Time) string {
	g, m := v.st.Guard, &v.st.MassDelete
	if g.Off || (!receivedAt.IsZero() && !receivedAt.After(m.ReleasedUntil)) {
		return ""
	}
	threshold := g.threshold(v.itemCount(ctx))
	now := workflow.Now(ctx)
	if m.HeldSince.IsZero() {
		n := m.forget(now, g)
		if n < threshold {
			m.count(now, g)
			v.version++
			return ""
		}
		m.HeldSince = now
		v.version++
		detail := fmt.Sprintf("%s within %s reached the mass-delete guard's threshold: every further delete of vault %s is held until the hold is cleared (clearMassDeleteHold)",
			protocol.Plural(m.forget(now, g), "delete"), g.window(), v.id)
		v.audit(ctx, "massDeleteHold", actor{by: signing.System}, protocol.OutcomeAccepted, detail)
		protocol.QueueAlert(&v.st.Outbox, protocol.Alert{Kind: AlertMassDelete, VaultID: v.id, ItemID: itemID, RequestedBy: who.by, Signer: who.signer,
			Time: now.UTC(), Detail: detail})
	}
	return fmt.Sprintf("vault %s holds deletes since %s: %d deletes within %s reached its mass-delete guard; the delete waits until the hold is cleared (clearMassDeleteHold)",
		v.id, protocol.FormatTime(m.HeldSince), threshold, g.window())
}

// forget drops the slots that have left the window and counts the rest.
func (m *MassDeleteState) forget(now time.Time, g MassDeleteGuard) int {
	m.Recent = slices.DeleteFunc(m.Recent, func(s DeleteSlot) bool { return !now.Before(s.Start.Add(g.slot() + g.window())) })
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

// countMaxAge is how old a count of the vault's items may be when the
// guard needs it; countActivity is the activity that counts them.
const countMaxAge = time.Minute

// itemCount is the vault's items that hold data, as visibility counted
// them; a count older than countMaxAge is made again first, once for all
// the deletes that wait for it, which then go on in the order they came. A
// count that fails keeps the last one (none at first, so the guard's
// threshold is its smallest, and it errs towards holding).
func (v *vault) itemCount(ctx workflow.Context) int {
	turn := v.turns
	v.turns++
	defer func() { v.served++ }()
	now := workflow.Now(ctx)
	if !v.counting && now.Sub(v.countTried) >= countMaxAge && now.Sub(v.st.Items.At) >= countMaxAge {
		v.countTried = now
		v.counting = true
		workflow.Go(ctx, func(ctx workflow.Context) {
			actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
				StartToCloseTimeout: 10 * time.Second,
				RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
			})
			var n int
			err := workflow.ExecuteActivity(actx, protocol.ActivityCountVaultItems, v.id).Get(ctx, &n)
			if err != nil {
				workflow.GetLogger(ctx).Warn("Vault's items not counted; the last count stands", "vault", v.id, "error", err)
			} else {
				v.st.Items = ItemCount{HoldingData: n, At: workflow.Now(ctx).UTC()}
				v.version++
			}
			v.counting = false
		})
	}
	// Cancelled only with the run, which then answers nothing.
	_ = workflow.Await(ctx, func() bool { return !v.counting && v.served == turn })
	return v.st.Items.HoldingData
}
