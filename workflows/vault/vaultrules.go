package vault

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"recoveryvault/workflows/protocol"
)

// ChangeSoftDelete applies a setSoftDelete request to the current settings,
// or refuses it in a sentence. It is the only place that knows the rules.
func ChangeSoftDelete(vaultID string, cur protocol.SoftDeleteSettings, req protocol.SetSoftDeleteRequest) (protocol.SoftDeleteSettings, error) {
	next := cur
	switch req.State {
	case "":
	case protocol.SoftDeleteEnabled, protocol.SoftDeleteDisabled, protocol.SoftDeleteAlwaysOn:
		next.State = req.State
	default:
		return cur, &protocol.Refusal{Message: fmt.Sprintf("soft-delete state %q is not known: use Enabled, Disabled or AlwaysOn", req.State)}
	}
	if cur.State == protocol.SoftDeleteAlwaysOn && next.State != protocol.SoftDeleteAlwaysOn {
		return cur, &protocol.Refusal{Message: fmt.Sprintf(
			"soft delete of vault %s is AlwaysOn, which is irreversible: it cannot be set to %s", vaultID, next.State)}
	}
	if req.RetentionDays != 0 {
		if req.RetentionDays < protocol.MinSoftDeleteRetentionDays || req.RetentionDays > protocol.MaxSoftDeleteRetentionDays {
			return cur, &protocol.Refusal{Message: fmt.Sprintf("retentionDays %d is out of bounds: soft-deleted data is kept %d to %d days",
				req.RetentionDays, protocol.MinSoftDeleteRetentionDays, protocol.MaxSoftDeleteRetentionDays)}
		}
		next.RetentionDays = req.RetentionDays
	}
	if req.PurgeReminder != "" {
		d, err := time.ParseDuration(req.PurgeReminder)
		if err != nil || d <= 0 {
			return cur, &protocol.Refusal{Message: fmt.Sprintf("purgeReminder %q is not a positive duration such as \"48h\"", req.PurgeReminder)}
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
func DeleteVaultRefusal(vaultID string, items []protocol.ListedItem) error {
	rows := slices.Clone(items)
	slices.SortFunc(rows, func(a, b protocol.ListedItem) int { return strings.Compare(a.WorkflowID, b.WorkflowID) })
	prefix := protocol.WorkflowID(vaultID, "")
	var soft, other []string
	for _, it := range rows {
		id := strings.TrimPrefix(it.WorkflowID, prefix)
		switch state := protocol.State(it.ProtectionState); state {
		case protocol.SoftDeleted:
			soft = append(soft, fmt.Sprintf("%s (purge scheduled for %s)", id, it.DeferredDeleteTime.UTC().Format(time.RFC3339)))
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
