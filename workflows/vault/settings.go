package vault

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"recoveryvault/internal/signing"
	"recoveryvault/workflows/protocol"
)

// setting is a setting command: how its request is judged (change), and
// where a request waiting for approval keeps it (payloadOf).
type setting struct {
	example   string
	signFirst bool
	change    func(d *decider, payload any) (change, error)
	payloadOf func(protocol.MuaRequest) any
}

// change is a judged setting command: critical ones wait for approval,
// signed ones must be signed on a vault with allowed signers.
type change struct {
	critical, signed bool
	summary          string
	// payload keeps the request in a request waiting for approval.
	payload func(*protocol.MuaRequest)
	apply   func(d *decider, who actor, reason string)
}

// settings are the vault's setting commands, by update name.
var settings = map[string]setting{
	protocol.UpdateSetSoftDelete: {
		example:   `{"state": "AlwaysOn", "retentionDays": 30}`,
		change:    softDeleteChange,
		payloadOf: func(r protocol.MuaRequest) any { return *r.SoftDelete },
	},
	protocol.UpdateEnableMua: {
		example:   `{"approvers": ["alice", "bob"], "approvalWindow": "24h"}`,
		change:    muaChange,
		payloadOf: func(r protocol.MuaRequest) any { return *r.Mua },
	},
	UpdateSetAllowedSigners: {
		example:   `{"allowedSigners": "alice@example.com ssh-ed25519 AAAA...\nbob@example.com ssh-ed25519 AAAA...", "requestedBy": "alice@example.com"}`,
		change:    signersChange,
		payloadOf: func(r protocol.MuaRequest) any { return *r.AllowedSigners },
	},
	UpdateSetMassDeleteGuard: {
		example:   `{"enabled": true, "threshold": 10, "window": "10m", "requestedBy": "alice"}`,
		change:    guardChange,
		payloadOf: func(r protocol.MuaRequest) any { return *r.Guard },
	},
	UpdateClearMassDeleteHold: {
		signFirst: true,
		change:    clearHoldChange,
		payloadOf: func(protocol.MuaRequest) any { return protocol.Request{} },
	},
	protocol.UpdateDeleteVault: {
		signFirst: true,
		change:    deleteVaultChange,
		payloadOf: func(protocol.MuaRequest) any { return protocol.Request{} },
	},
}

// carryingOut is true while an approved request is carried out.
func (d *decider) carryingOut() bool { return d.c.Op == protocol.UpdateApprove }

func softDeleteChange(d *decider, payload any) (change, error) {
	req := payload.(protocol.SetSoftDeleteRequest)
	next, err := ChangeSoftDelete(d.st.ID, d.st.SoftDelete, req)
	if err == nil && d.f.Settings.StoreLocks && next.State == protocol.SoftDeleteDisabled {
		err = &protocol.Refusal{Message: fmt.Sprintf("vault %s keeps its data on a store with object lock, which holds every object until its soft-delete window ends: "+
			"soft delete cannot be Disabled there; keep it Enabled or AlwaysOn", d.st.ID)}
	}
	critical := CriticalSoftDeleteChange(d.st.SoftDelete, next)
	req.Signature = signing.Signature{}
	return change{critical: critical, signed: critical,
		summary: fmt.Sprintf("set soft delete to %s, %d days", next.State, next.RetentionDays),
		payload: func(r *protocol.MuaRequest) { r.SoftDelete = &req },
		apply: func(d *decider, who actor, reason string) {
			cur := d.st.SoftDelete
			d.st.SoftDelete = next
			d.applied(protocol.UpdateSetSoftDelete, who, reason, fmt.Sprintf("soft delete %s, %d days, reminder %s before purge (was %s, %d days, %s); applies to deletes from now on",
				next.State, next.RetentionDays, next.PurgeReminder, cur.State, cur.RetentionDays, cur.PurgeReminder))
		},
	}, err
}

func muaChange(d *decider, payload any) (change, error) {
	req := payload.(protocol.EnableMuaRequest)
	next, err := ChangeMua(d.st.ID, d.st.Mua, req)
	if err == nil && next.Enabled {
		err = d.keysOfApprovers(d.st.AllowedSigners, next.Approvers)
	}
	summary := "turn multi-user authorization off"
	if next.Enabled {
		summary = next.String()
	}
	req.Signature = signing.Signature{}
	// Every change of multi-user authorization is signed on a vault that
	// requires signatures, turning it on included.
	return change{critical: CriticalMuaChange(d.st.Mua, next), signed: true, summary: summary,
		payload: func(r *protocol.MuaRequest) { r.Mua = &req },
		apply: func(d *decider, who actor, reason string) {
			detail := next.String() + " (was " + d.st.Mua.String() + ")"
			d.st.Mua = next
			d.applied(protocol.UpdateEnableMua, who, reason, detail)
			if !next.Enabled {
				// Nobody is left to approve what waits.
				d.closePending(func(protocol.MuaRequest) bool { return true }, protocol.RequestRejected,
					func(protocol.MuaRequest) string {
						return "multi-user authorization was turned off: send the operation again"
					})
			}
		},
	}, err
}

// signersChange sets, replaces or removes the allowed signers; replacing or
// removing them is signed with a key listed now.
func signersChange(d *decider, payload any) (change, error) {
	req := payload.(protocol.SetAllowedSignersRequest)
	signers, err := signing.ParseAllowedSigners(req.AllowedSigners)
	switch {
	case err != nil:
		err = protocol.FieldRefusal(protocol.CodeBadValue, "allowedSigners", "allowedSigners: %v: nothing changed", err)
	case len(signers) == 0 && d.st.AllowedSigners == "" && !d.carryingOut():
		err = &protocol.Refusal{Message: fmt.Sprintf("vault %s holds no allowed signers, and none were given: send the text of an allowed_signers file", d.st.ID)}
	case len(signers) > 0 && d.st.Mua.Enabled:
		err = d.keysOfApprovers(req.AllowedSigners, d.st.Mua.Approvers)
	}
	if len(signers) == 0 {
		req.AllowedSigners = ""
	}
	summary := "remove the allowed signers: critical operations would no longer be signed"
	if len(signers) > 0 {
		summary = "set the allowed signers to " + signerSummary(signers)
	}
	req.Signature = signing.Signature{}
	return change{critical: true, signed: d.st.AllowedSigners != "", summary: summary,
		payload: func(r *protocol.MuaRequest) { r.AllowedSigners = &req },
		apply: func(d *decider, who actor, reason string) {
			detail := "allowed signers removed: critical operations are no longer signed"
			if len(signers) > 0 {
				detail = "allowed signers set to " + signerSummary(signers) + ": every critical operation must now be signed"
			}
			d.st.AllowedSigners = strings.TrimSpace(req.AllowedSigners)
			d.applied(UpdateSetAllowedSigners, who, reason, detail)
			// A request its keys no longer stand behind waits for nothing.
			d.closePending(func(r protocol.MuaRequest) bool { return unbacked(r, signers, d.st.Mua.Approvers) != "" }, protocol.RequestRejected,
				func(r protocol.MuaRequest) string {
					return unbacked(r, signers, d.st.Mua.Approvers) + ": send the operation again"
				})
		},
	}, err
}

func guardChange(d *decider, payload any) (change, error) {
	req := payload.(protocol.SetMassDeleteGuardRequest)
	next, err := ChangeMassDeleteGuard(d.st.Guard, req)
	if err != nil {
		return change{}, err
	}
	// Whether a threshold is looser depends on how many items there are.
	items, err := d.itemCount()
	if err != nil {
		return change{}, err
	}
	critical := LooserMassDeleteGuard(d.st.Guard, next, items)
	req.Signature = signing.Signature{}
	return change{critical: critical, signed: critical, summary: "set the " + next.String(),
		payload: func(r *protocol.MuaRequest) { r.Guard = &req },
		apply: func(d *decider, who actor, reason string) {
			detail := next.String() + " (was " + d.st.Guard.String() + ")"
			d.st.Guard = next
			if next.Off {
				// Nothing holds deletes any more.
				d.st.MassDelete.HeldSince = time.Time{}
			}
			d.applied(UpdateSetMassDeleteGuard, who, reason, detail)
		},
	}, nil
}

// clearHoldChange releases the vault's held deletes: each is let through at
// its item's next try.
func clearHoldChange(d *decider, _ any) (change, error) {
	if d.st.MassDelete.HeldSince.IsZero() {
		if d.carryingOut() {
			return change{}, fmt.Errorf("vault %s holds no deletes any more", d.st.ID)
		}
		return change{}, &protocol.Refusal{Message: fmt.Sprintf("vault %s holds no deletes: there is nothing to clear", d.st.ID)}
	}
	return change{critical: true, signed: true, summary: "clear the mass-delete hold: let the held deletes through",
		apply: func(d *decider, who actor, reason string) {
			detail := fmt.Sprintf("mass-delete hold cleared: the deletes held since %s are let through at their items' next try (within %s), uncounted; the guard counts later ones afresh",
				protocol.FormatTime(d.st.MassDelete.HeldSince), protocol.MaxHeldDeleteRetry)
			d.st.MassDelete = MassDeleteState{Hold: protocol.Hold{ReleasedUntil: d.f.Now.UTC()}}
			d.applied(UpdateClearMassDeleteHold, who, reason, detail)
		},
	}, nil
}

// deleteVaultChange deletes a vault that holds no item with data, checked
// before approvers are asked too.
func deleteVaultChange(d *decider, _ any) (change, error) {
	if err := d.need(AskItems, d.f.Items != nil || d.f.ItemsErr != ""); err != nil {
		return change{}, err
	}
	if d.f.ItemsErr != "" {
		return change{}, fmt.Errorf("vault %s cannot be deleted now: its items could not be checked (%s); try again", d.st.ID, d.f.ItemsErr)
	}
	if err := DeleteVaultRefusal(d.st.ID, *d.f.Items); err != nil {
		return change{}, err
	}
	return change{critical: true, signed: true, summary: "delete vault " + d.st.ID,
		apply: func(d *decider, who actor, reason string) {
			d.st.Deleted = true
			d.applied(protocol.UpdateDeleteVault, who, reason, "vault deleted")
		},
	}, nil
}

// applied audits a change carried out.
func (d *decider) applied(op string, who actor, reason, detail string) {
	if reason != "" {
		detail += "; reason: " + reason
	}
	d.audit(op, who, protocol.OutcomeAccepted, detail)
}

// keysOfApprovers refuses approvers who have no key among allowed signers
// text (when set): under signatures they could never approve.
func (d *decider) keysOfApprovers(text string, approvers []string) error {
	if text == "" {
		return nil
	}
	signers, err := signing.ParseAllowedSigners(text)
	if err != nil {
		return err
	}
	if missing := signing.UnlistedApprovers(signers, approvers); len(missing) > 0 {
		return &protocol.Refusal{Message: fmt.Sprintf("vault %s requires signatures, and approver %s has no key in its allowed signers, so could never approve: list their keys first (setAllowedSigners), or name other approvers",
			d.st.ID, strings.Join(missing, ", "))}
	}
	return sharedApproverKeys(signers, approvers)
}

// ChangeSoftDelete applies a setSoftDelete request to the current settings,
// or refuses it in a sentence.
func ChangeSoftDelete(vaultID string, cur protocol.SoftDeleteSettings, req protocol.SetSoftDeleteRequest) (protocol.SoftDeleteSettings, error) {
	next := cur
	switch req.State {
	case "":
	case protocol.SoftDeleteEnabled, protocol.SoftDeleteDisabled, protocol.SoftDeleteAlwaysOn:
		next.State = req.State
	default:
		return cur, protocol.FieldRefusal(protocol.CodeBadValue, "state", "state %q is not a soft-delete state: use Enabled, Disabled or AlwaysOn", req.State)
	}
	if cur.State == protocol.SoftDeleteAlwaysOn && next.State != protocol.SoftDeleteAlwaysOn {
		return cur, &protocol.Refusal{Message: fmt.Sprintf(
			"soft delete of vault %s is AlwaysOn, which is irreversible: it cannot be set to %s", vaultID, next.State)}
	}
	if req.RetentionDays != 0 {
		if req.RetentionDays < protocol.MinSoftDeleteRetentionDays || req.RetentionDays > protocol.MaxSoftDeleteRetentionDays {
			return cur, protocol.FieldRefusal(protocol.CodeOutOfBounds, "retentionDays", "retentionDays %d is out of bounds: soft-deleted data is kept %d to %d days",
				req.RetentionDays, protocol.MinSoftDeleteRetentionDays, protocol.MaxSoftDeleteRetentionDays)
		}
		next.RetentionDays = req.RetentionDays
	}
	if req.PurgeReminder != "" {
		d, err := time.ParseDuration(req.PurgeReminder)
		if err != nil || d <= 0 {
			return cur, protocol.FieldRefusal(protocol.CodeBadValue, "purgeReminder", "purgeReminder %q is not a positive duration such as \"48h\"", req.PurgeReminder)
		}
		next.PurgeReminder = d.String()
	}
	return next, nil
}

// CriticalSoftDeleteChange is true for a change that weakens soft delete:
// turning it off or shortening the retention.
func CriticalSoftDeleteChange(cur, next protocol.SoftDeleteSettings) bool {
	return (next.State == protocol.SoftDeleteDisabled && cur.State != protocol.SoftDeleteDisabled) || next.RetentionDays < cur.RetentionDays
}

// CriticalMuaChange is true for a change that could let one person act
// alone: turning it off, or changing its approvers or period.
func CriticalMuaChange(cur, next MuaSettings) bool {
	return cur.Enabled && (!next.Enabled || !slices.Equal(cur.Approvers, next.Approvers) || cur.ApprovalWindow != next.ApprovalWindow)
}

// maxNamedInRefusal bounds the items a refusal names, of each kind: a
// vault may hold many thousands.
const maxNamedInRefusal = 20

// DeleteVaultRefusal says why a vault cannot be deleted yet, naming the
// first of its items with data, or is nil.
func DeleteVaultRefusal(vaultID string, items []protocol.ListedItem) error {
	rows := slices.Clone(items)
	slices.SortFunc(rows, func(a, b protocol.ListedItem) int { return strings.Compare(a.WorkflowID, b.WorkflowID) })
	prefix := protocol.WorkflowID(vaultID, "")
	var soft, other []string
	for _, it := range rows {
		id := strings.TrimPrefix(it.WorkflowID, prefix)
		switch state := protocol.State(it.ProtectionState); state {
		case protocol.SoftDeleted:
			soft = append(soft, fmt.Sprintf("%s (purge scheduled for %s)", id, protocol.FormatTime(it.DeferredDeleteTime)))
		case "", protocol.Purged:
			// A first backup under way, or a purge not finished: data still.
			other = append(other, fmt.Sprintf("%s (%s)", id, protocol.Protected))
		default:
			other = append(other, fmt.Sprintf("%s (%s)", id, state))
		}
	}
	if len(soft) == 0 && len(other) == 0 {
		return nil
	}
	var parts []string
	if len(soft) > 0 {
		parts = append(parts, fmt.Sprintf("it holds %s: %s", protocol.Plural(len(soft), "soft-deleted item"), namedFirst(soft)))
	}
	if len(other) > 0 {
		parts = append(parts, fmt.Sprintf("it holds %s with backup data: %s", protocol.Plural(len(other), "item"), namedFirst(other)))
	}
	return &protocol.Refusal{Message: fmt.Sprintf("vault %s cannot be deleted: %s; a vault can be deleted once all its items are purged",
		vaultID, strings.Join(parts, "; "))}
}

// namedFirst joins the first maxNamedInRefusal names and says how many more.
func namedFirst(names []string) string {
	if len(names) <= maxNamedInRefusal {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more (starter list --vault shows them all)", strings.Join(names[:maxNamedInRefusal], ", "), len(names)-maxNamedInRefusal)
}
