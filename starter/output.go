package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"recoveryvault/internal/items"
	"recoveryvault/internal/signing"
	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
	"recoveryvault/workflows/vault"
)

const auditShown = 10

// printStatus shows an item's status; guardHolds says its vault's
// mass-delete guard holds the delete that waits.
func printStatus(out io.Writer, st item.Status, guardHolds bool) {
	if r := st.PendingApproval; r != nil {
		fmt.Fprintf(out, "Pending approval: request %s at vault %s; %s.\nAn approver runs: starter vault approve --vault %s --request %s --requested-by NAME\n\n",
			r.RequestID, st.VaultID, r.Detail, st.VaultID, r.RequestID)
	}
	if p := st.PendingDelete; p != nil {
		why := p.Why
		if guardHolds {
			// Said in the starter's words: the command that releases it.
			why = fmt.Sprintf("the vault's mass-delete guard holds it until an operator clears the hold (starter vault clear-mass-delete-hold --vault %s)", st.VaultID)
		}
		fmt.Fprintf(out, "Delete waiting for the vault: asked by %s at %s, %s so far; %s. It is applied once the vault answers; undelete cancels it.\n\n",
			p.RequestedBy, p.Since.UTC().Format(time.RFC3339), protocol.Plural(p.Attempts, "attempt"), why)
	}
	if c := st.ConfirmingApproval; c != nil {
		fmt.Fprintf(out, "Approval waiting for the vault: request %s, approved by %s, %s so far; %s. The delete is carried out once the vault confirms it.\n\n",
			c.RequestID, c.ApprovedBy, protocol.Plural(c.Attempts, "attempt"), c.Why)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Item\t%s/%s\n", st.VaultID, st.ItemID)
	fmt.Fprintf(tw, "State\t%s\n", st.ProtectionState)
	if st.IsScheduledForDeferredDelete {
		fmt.Fprintf(tw, "Purge scheduled\t%s (%s left; undelete before then to keep the data)\n", st.DeferredDeleteTimeInUTC, st.DeferredDeleteTimeRemaining)
	}
	fmt.Fprintf(tw, "Source\t%s\n", st.SourcePath)
	fmt.Fprintf(tw, "Policy\tevery %s, keep recovery points %s\n", st.Policy.Frequency, protocol.Plural(st.Policy.RetentionDays, "day"))
	window := "Soft-delete window\t%s (what a delete made now gets)\n"
	if st.ProtectionState == protocol.SoftDeleted || st.ProtectionState == protocol.Purged {
		window = "Soft-delete window\t%s (applied at the delete)\n"
	}
	fmt.Fprintf(tw, window, st.SoftDeleteWindow)
	if st.SoftDeleteRetentionOverride != "" {
		fmt.Fprintf(tw, "WARNING\tsoft-delete window %s\n", st.SoftDeleteRetentionOverride)
	}
	last := st.LastBackupTime
	if last == "" {
		last = "none yet"
	}
	fmt.Fprintf(tw, "Last backup\t%s\n", last)
	tw.Flush()

	fmt.Fprintf(out, "\nRecovery points (%d)\n", len(st.RecoveryPoints))
	if len(st.RecoveryPoints) > 0 {
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCREATED\tEXPIRES\tSIZE\tNEW IN STORE\tCHANGE\tVERIFIED\tCONTENT SHA256")
		for _, rp := range st.RecoveryPoints {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", rp.ID, rp.CreatedAt.UTC().Format(time.RFC3339), rp.ExpiresAt.UTC().Format(time.RFC3339), rp.SizeBytes, rp.NewBytes, rp.Change.Text(), verifiedText(rp), short(rp.SHA256))
		}
		tw.Flush()
		for _, rp := range st.RecoveryPoints {
			switch {
			case rp.Suspect != "" && rp.Accepted == "":
				fmt.Fprintf(out, "ANOMALY: %s is suspect: %s. Older points are kept and deletes wait: look, then `starter clear-anomaly --reason ...`\n", rp.ID, rp.Suspect)
			case rp.Suspect != "":
				fmt.Fprintf(out, "%s was suspect (%s); cleared %s\n", rp.ID, rp.Suspect, rp.Accepted)
			}
			if rp.VerifyFailed != "" {
				fmt.Fprintf(out, "VERIFY FAILED: %s did not read back as backed up: %s\n", rp.ID, rp.VerifyFailed)
			}
		}
	}

	printAudit(out, st.Audit)
}

func printList(out io.Writer, rows []listed) {
	if len(rows) == 0 {
		fmt.Fprintln(out, "No items.")
		return
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VAULT\tITEM\tSTATE\tPURGE AT\tTIME LEFT\tWAITING\tANOMALY\tWORKFLOW\tRUN")
	for _, r := range rows {
		purge, left := r.DeferredDeleteTime, r.Remaining
		if r.PurgedAt != "" {
			// A purged item and one protected again under its name differ
			// by run, and by when the first was purged.
			purge, left = r.PurgedAt, "purged"
		}
		waiting := "-"
		if r.DeleteWaiting {
			waiting = "delete waits for the vault"
		}
		anomaly := "-"
		if r.Anomaly {
			anomaly = "suspect points"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.VaultID, r.ItemID, r.ProtectionState, dash(purge), dash(left), waiting, anomaly, r.WorkflowStatus, short(r.RunID))
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

// printVaultStatus shows a vault's status and its items' counts by state
// (nil when they could not be counted).
func printVaultStatus(out io.Writer, st vault.VaultStatus, counts map[protocol.State]int) {
	if r := st.Request; r != nil {
		fmt.Fprintf(out, "Request %s (%s): %s; %s.\n", r.RequestID, r.Summary, r.State, r.Detail)
		if r.State == protocol.RequestPending {
			fmt.Fprintf(out, "An approver runs: starter vault approve --vault %s --request %s --requested-by NAME\n", st.VaultID, r.RequestID)
		}
		fmt.Fprintln(out)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Vault\t%s\n", st.VaultID)
	if st.Deleted {
		fmt.Fprintf(tw, "Deleted\tyes\n")
	}
	fmt.Fprintf(tw, "Soft delete\t%s, %d days, reminder %s before purge\n", st.SoftDelete.State, st.SoftDelete.RetentionDays, st.SoftDelete.PurgeReminder)
	if st.SoftDeleteRetentionOverride != "" {
		fmt.Fprintf(tw, "WARNING\tsoft-delete window %s\n", st.SoftDeleteRetentionOverride)
	}
	fmt.Fprintf(tw, "Approval\t%s\n", st.MultiUserAuthorization)
	g := st.MassDeleteGuard
	fmt.Fprintf(tw, "Mass delete\t%s\n", g.Summary)
	if !g.HeldSince.IsZero() {
		fmt.Fprintf(tw, "HOLDING DELETES\tsince %s: %s within %s reached the guard; clear-mass-delete-hold lets the held ones through\n",
			g.HeldSince.UTC().Format(time.RFC3339), protocol.Plural(g.Threshold, "delete"), g.Window)
	}
	if st.SignaturesRequired {
		fmt.Fprintf(tw, "Signatures\trequired on critical operations and approvals, by %s:\n", protocol.Plural(len(st.AllowedSigners), "key"))
		for _, k := range st.AllowedSigners {
			fmt.Fprintf(tw, "\t  %s  %s %s\n", strings.Join(k.Principals, ","), k.KeyType, k.Fingerprint)
		}
	} else {
		fmt.Fprintf(tw, "Signatures\tnot required (no allowed signers)\n")
	}
	tw.Flush()
	if len(st.Requests) > 0 {
		fmt.Fprintln(out, "\nRequests")
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tOPERATION\tBY\tEXPIRES\tDETAIL")
		for _, r := range st.Requests {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.RequestID, r.State, r.Summary, r.RequestedBy, r.ExpiresAt.UTC().Format(time.RFC3339), r.Detail)
		}
		tw.Flush()
	}
	fmt.Fprintln(out, "\nItems (from visibility; starter list --vault "+st.VaultID+" lists them)")
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if counts == nil {
		fmt.Fprintln(tw, "\tnot counted: visibility did not answer")
	}
	for _, state := range protocol.VisibleStates {
		if counts != nil {
			fmt.Fprintf(tw, "%s\t%d\n", state, counts[state])
		}
	}
	if counts != nil {
		pending := 0
		for _, r := range st.Requests {
			if r.State == protocol.RequestPending && r.Operation == protocol.UpdateDelete {
				pending++
			}
		}
		fmt.Fprintf(tw, "Deletes waiting\t%d for the vault, %d for approval\n", counts[items.Waiting], pending)
		fmt.Fprintf(tw, "Anomalies\t%d (items with suspect points: clear-anomaly after a look)\n", counts[items.Anomaly])
	}
	tw.Flush()
	printAudit(out, st.Audit)
}

// printAudit shows the newest audit entries, oldest first.
// shortSigner shortens a signer's key fingerprint to what tells keys apart
// at a glance: "alice (SHA256:Es/qrKmX…)". --json prints it whole.
func shortSigner(s string) string {
	fp := signing.FingerprintOf(s)
	if n := len("SHA256:") + 8; len(fp) > n {
		return strings.TrimSuffix(s, fp+")") + fp[:n] + "…)"
	}
	return s
}

func printAudit(out io.Writer, all []protocol.AuditEntry) {
	audit := all
	if len(audit) > auditShown {
		audit = audit[len(audit)-auditShown:]
	}
	fmt.Fprintf(out, "\nAudit (last %d of %d)\n", len(audit), len(all))
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tOPERATION\tBY\tSIGNED BY\tOUTCOME\tDETAIL")
	for _, e := range audit {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339), e.Operation, e.RequestedBy, dash(shortSigner(e.Signer)), e.Outcome, e.Detail)
	}
	tw.Flush()
}

// verifiedText says what the last restore drill of a point found.
func verifiedText(rp protocol.RecoveryPoint) string {
	switch {
	case rp.VerifyFailed != "":
		return "FAILED " + rp.CheckedAt.UTC().Format(time.RFC3339)
	case rp.Verified:
		return rp.CheckedAt.UTC().Format(time.RFC3339)
	}
	return "-"
}
