package item

import (
	"fmt"
	"slices"
	"strings"

	"recoveryvault/workflows/protocol"
)

// rule is the item's anomaly rule: its policy's, over the defaults.
func (d *decider) rule() protocol.AnomalyRule {
	if r := d.in.Item.Policy.Anomaly; r != nil {
		return *r
	}
	return protocol.AnomalyRule{}
}

// judge marks a new point suspect when its change looks like ransomware,
// and raises the anomaly alert at once.
func (d *decider) judge(rp *protocol.RecoveryPoint) string {
	why := d.rule().JudgePoint(d.st.RecoveryPoints, *rp, d.ev.Since)
	if why == "" {
		return ""
	}
	rp.Suspect = why
	detail := fmt.Sprintf("recovery point %s is suspect: %s; the points before it are kept and deletes wait until the anomaly is cleared", rp.ID, why)
	d.effects = append(d.effects, Effect{Kind: EffectReport, Alerts: []protocol.Alert{d.alert(protocol.AlertAnomaly, d.ev.By, detail)}})
	return detail
}

// heldByAnomaly says why a delete, or its approval, waits for the clear:
// encrypting, then deleting, must gain an attacker nothing.
func (d *decider) heldByAnomaly(a *protocol.RecoveryPoint) string {
	return fmt.Sprintf("item %s has an anomaly since recovery point %s (%s): deletes wait until it is cleared", d.item, a.ID, a.Suspect)
}

// clearAnomaly accepts the suspect points, critical as a delete is: the
// vault's multi-user authorization and signatures apply.
func (d *decider) clearAnomaly() (Decision, error) {
	if protocol.Anomaly(d.st.RecoveryPoints) == nil {
		return d.refuse("item %s has no anomaly to clear: no recovery point is suspect", d.item)
	}
	if strings.TrimSpace(d.ev.Reason) == "" {
		return Decision{}, protocol.FieldRefusal(protocol.CodeBadValue, "reason",
			"reason is needed to clear an anomaly: say whether it was a false alarm or a change accepted; nothing changed")
	}
	// A clear does not wait for its vault: asked again later, it would
	// accept points found suspect meanwhile, unseen.
	if v := d.in.Vault; v != nil && v.Unavailable+v.Held != "" {
		return d.refuse("item %s: %s; nothing cleared: ask again once the vault answers", d.item, v.Unavailable+v.Held)
	}
	v, without, err := d.vaultAnswer()
	if v == nil {
		return without, err
	}
	if v.Pending != nil {
		return d.register(protocol.OpClearAnomaly, v), nil
	}
	d.clear(d.ev.By, v.Signer, suspects(d.st.RecoveryPoints))
	return d.decision(), nil
}

// suspects are the IDs of the points found suspect and not accepted.
func suspects(points []protocol.RecoveryPoint) []string {
	var ids []string
	for _, rp := range points {
		if rp.Suspect != "" && rp.Accepted == "" {
			ids = append(ids, rp.ID)
		}
	}
	return ids
}

// clear accepts the suspect points named when it was asked, no later one;
// with none left, the newest too, as the baseline, and waiting deletes go on.
func (d *decider) clear(by, signer string, named []string) {
	accepted := fmt.Sprintf("by %s at %s: %s", by, protocol.FormatTime(d.in.Now), d.ev.Reason)
	points := slices.Clone(d.st.RecoveryPoints)
	n := 0
	for i := range points {
		if points[i].Suspect != "" && points[i].Accepted == "" && slices.Contains(named, points[i].ID) {
			points[i].Accepted = accepted
			n++
		}
	}
	if last := len(points) - 1; last >= 0 && protocol.Anomaly(points) == nil && points[last].Accepted == "" {
		points[last].Accepted = accepted
	}
	d.st.RecoveryPoints = points
	// What waited is asked again now, and counted by the vault's guard
	// from now.
	if protocol.Anomaly(points) == nil {
		d.st.Waiting = slices.Clone(d.st.Waiting)
		for i := range d.st.Waiting {
			d.st.Waiting[i].RetryAt, d.st.Waiting[i].Since = d.in.Now, d.in.Now
		}
	}
	d.changed(protocol.OpClearAnomaly, by, fmt.Sprintf("anomaly cleared: %s accepted as known good; the points before expire again and deletes go on",
		protocol.Plural(n, "suspect recovery point")))
	d.audit.Signer = signer
	d.collect()
}

// keptByAnomaly is true for a point an unresolved anomaly keeps: the
// suspect one and every point before it.
func keptByAnomaly(points []protocol.RecoveryPoint, rp protocol.RecoveryPoint) bool {
	a := protocol.Anomaly(points)
	return a != nil && !rp.CreatedAt.After(a.CreatedAt)
}
