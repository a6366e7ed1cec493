package console

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"recoveryvault/internal/items"
	"recoveryvault/internal/signingtest"
	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
	"recoveryvault/workflows/vault"
)

// browser is a tab of headless Chromium on the console.
type browser struct {
	t   *testing.T
	ctx context.Context
	dir string
}

// startBrowser runs Debian's Chromium headless, or skips the test where it
// is not installed.
func startBrowser(t *testing.T) *browser {
	path, err := exec.LookPath("chromium")
	if err != nil {
		const why = "the browser test needs Chromium: install it with `apt-get install chromium` (.ci/run does)"
		if os.Getenv("RECOVERYVAULT_REQUIRE_BROWSER") != "" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.DisableGPU,
		// This machine's network is closed: Chromium must not try to call home.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium's sandbox refuses to run as root
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	// The first run starts the browser; it must have no deadline of its own.
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")), "start Chromium at %s", path)
	return &browser{t: t, ctx: ctx, dir: t.ArtifactDir()}
}

// tab opens another tab of the same browser, with the same cookies.
func (b *browser) tab() *browser {
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	require.NoError(b.t, chromedp.Do(ctx, chromedp.Navigate("about:blank")))
	return &browser{t: b.t, ctx: ctx, dir: b.dir}
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	require.NoError(b.t, chromedp.Do(ctx, steps...))
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	require.NoError(b.t, err, sel)
	return s
}

func (b *browser) eval(js string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	require.NoError(b.t, err, js)
	return s
}

// until waits for a JavaScript condition to hold on the page, across the
// navigation a click may have started.
func (b *browser) until(js string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.readyState === "complete" && Boolean(`+js+`)`))
		cancel()
		if err == nil && ok {
			return
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("the page never showed %s (last error: %v); it has: %s", js, last, b.eval(`document.body ? document.body.innerText : ""`))
}

// shot saves a screenshot of the whole page under the test's output
// directory (go test -artifacts keeps them).
func (b *browser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(b.t, err)
	require.NoError(b.t, os.WriteFile(filepath.Join(b.dir, name+".png"), png, 0o644))
}

var countdownPattern = regexp.MustCompile(`^0h \d\dm \d\ds$`)

// TestBrowserDeletesUndeletesAndResumesAnItem drives the console in
// headless Chromium as an operator would, through an item's whole life.
func TestBrowserDeletesUndeletesAndResumesAnItem(t *testing.T) {
	b := startBrowser(t)
	k := startCluster(t, Options{RefreshInterval: 500 * time.Millisecond})
	k.protect("vault1", "vm1")
	k.protect("vault1", "db1")
	k.visible("vault1", map[string]protocol.State{"vm1": protocol.Protected, "db1": protocol.Protected})
	item := "/vaults/vault1/items/vm1"

	// A first visit reads without a name: the name is asked at the first action.
	b.do(chromedp.Navigate(k.url + "/"))
	b.until(`document.querySelector("h1").textContent === "Vaults"`)
	assert.Contains(t, b.text(".who"), "Reading as a guest")
	b.shot("1-vaults")

	b.do(chromedp.Click(chromedp.CSS(`a[href="/vaults/vault1"]`)))
	b.until(`document.querySelector('tr[data-item="vm1"]') !== null`)
	assert.Equal(t, "Protected", b.text(`tr[data-item="vm1"] .state-label`))
	// Every row shows its last backup and its recovery points, and the
	// caption counts what the filter counts.
	for _, id := range []string{"vm1", "db1"} {
		assert.Regexp(t, `^20\d\d-\d\d-\d\d \d\d:\d\d:\d\d UTC$`, b.text(`tr[data-item="`+id+`"] td[data-label="Last backup"]`), id)
		assert.Equal(t, "1", b.text(`tr[data-item="`+id+`"] td[data-label="Recovery points"]`), id)
	}
	assert.Equal(t, "Items 1–2 of 2", b.text("table.items caption"))
	assert.Equal(t, "2", b.text(`.filters a[href="/vaults/vault1"] .count`), "the All filter counts the same")
	b.shot("2-backup-items")

	b.do(chromedp.Click(chromedp.CSS(`a[href="` + item + `"]`)))
	b.until(`document.querySelector(".state-Protected") !== null`)
	// The recovery points' IDs, which a restore needs, and the commands.
	rp := k.status("vault1", "vm1").RecoveryPoints[0].ID
	assert.Equal(t, rp, b.text(`tr[data-point="`+rp+`"] .rp-id`))
	b.do(chromedp.Click(chromedp.CSS("details.commands summary")))
	assert.Contains(t, b.text("details.commands"), "go run ./starter restore --vault vault1 --item vm1 --recovery-point "+rp)
	assert.Contains(t, b.text("details.commands"), "temporal workflow update execute --workflow-id backup-item/vault1/vm1 --name restore")
	assert.Contains(t, b.text("#status"), "Soft-delete window")
	b.shot("3-item-protected")

	// The first action asks who the operator is, and does nothing yet.
	b.do(chromedp.Click(chromedp.CSS("#delete summary")), chromedp.WaitVisible(chromedp.ID("confirmName")),
		chromedp.SendKeys(chromedp.ID("confirmName"), "vm1"), chromedp.SendKeys(chromedp.ID("reason"), "decommissioned"),
		chromedp.Click(chromedp.CSS(`#delete button[type="submit"]`)))
	b.until(`document.getElementById("name") !== null`)
	assert.Contains(t, b.text(".flash"), "Nothing was done yet")
	assert.Equal(t, protocol.Protected, k.status("vault1", "vm1").ProtectionState)
	b.do(chromedp.SendKeys(chromedp.ID("name"), "alice@example.com"), chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	b.until(`document.querySelector(".state-Protected") !== null && document.querySelector("#delete") !== null`)
	assert.Contains(t, b.text(".who"), "alice@example.com")

	// Another tab on the same item, where the operator starts a restore.
	other := b.tab()
	target := filepath.Join(t.TempDir(), "restored")
	other.do(chromedp.Navigate(k.url+item), chromedp.Click(chromedp.CSS("#restore summary")),
		chromedp.SendKeys(chromedp.ID("targetPath"), target))

	// Stop and delete: the confirmation asks for the item's name and a reason.
	b.do(chromedp.Click(chromedp.CSS("#delete summary")), chromedp.WaitVisible(chromedp.ID("confirmName")),
		chromedp.SendKeys(chromedp.ID("confirmName"), "vm1"), chromedp.SendKeys(chromedp.ID("reason"), "decommissioned"))
	b.shot("4-delete-confirmation")
	b.do(chromedp.SendKeys(chromedp.ID("reason"), kb.Enter)) // submitted from the keyboard
	b.until(`document.querySelector(".state-SoftDeleted") !== null`)
	assert.Equal(t, "rgb(197, 15, 31)", b.eval(`getComputedStyle(document.querySelector(".state-SoftDeleted .icon-softdeleted")).fill`),
		"the soft-delete icon is red")
	first := b.text("time.countdown")
	assert.Regexp(t, countdownPattern, first, "an hour's window (the test worker's) counts down")
	b.until(`document.querySelector("time.countdown").textContent !== ` + jsString(first))
	assert.Regexp(t, countdownPattern, b.text("time.countdown"), "it ticks")
	assert.Contains(t, b.text(".flash"), "Backup data soft-deleted")
	// The deadline is in the future: it is scheduled, not past.
	assert.Contains(t, b.text("#status"), "Purge scheduled for")
	assert.NotContains(t, b.text("#status"), "Purged at")
	assert.Contains(t, b.text("#status"), "applied at the delete")
	b.shot("5-item-soft-deleted")

	// The other tab's restore reaches a soft-deleted item: the workflow
	// refuses it, in its own words, and nothing is written.
	other.do(chromedp.Click(chromedp.CSS("#restore button")))
	other.until(`document.getElementById("error") !== null`)
	assert.Equal(t, "item vm1 is soft-deleted: undelete it before restoring", other.text("#error"))
	assert.NoDirExists(t, target)
	other.shot("6-restore-refused")

	// The Backup Items page: the red icon and the countdown, and a page
	// that follows another operator's delete without a reload.
	b.do(chromedp.Navigate(k.url + "/vaults/vault1"))
	b.until(`document.querySelector('tr[data-item="vm1"][data-state="SoftDeleted"] .icon-softdeleted') !== null`)
	b.until(`document.querySelector('tr[data-item="vm1"] time.countdown') !== null`)
	b.eval(`window.sameDocument = "yes"`)
	k.update("vault1", "db1", protocol.UpdateDelete, protocol.Request{RequestedBy: "bob", Reason: "moved"})
	b.until(`document.querySelector('tr[data-item="db1"][data-state="SoftDeleted"] time.countdown') !== null`)
	assert.Equal(t, "yes", b.eval(`window.sameDocument`), "updated in place, not reloaded")
	b.shot("7-backup-items-soft-deleted")

	// At phone width nothing runs off the side.
	b.do(chromedp.EmulateViewport(390, 844))
	assert.Equal(t, "true", b.eval(`String(document.documentElement.scrollWidth <= window.innerWidth)`))
	b.shot("8-backup-items-phone")

	b.do(chromedp.Navigate(k.url + item))
	b.until(`document.querySelector(".state-SoftDeleted") !== null`)
	assert.Equal(t, "true", b.eval(`String(document.documentElement.scrollWidth <= window.innerWidth)`), "the item page too")
	b.shot("9-item-phone")
	b.do(chromedp.EmulateViewport(1280, 900))

	b.do(chromedp.Click(chromedp.CSS(`form[action$="/undelete"] button`)))
	b.until(`document.querySelector(".state-ProtectionStopped") !== null`)
	assert.Contains(t, b.text(".state-line"), "Stop protection with retain data")
	assert.Contains(t, b.text(".flash"), "Undeleted")
	b.shot("10-item-undeleted")

	// Left open while another client deletes the item again, the page says
	// "Undeleted" no more: what it says is what is.
	k.update("vault1", "vm1", protocol.UpdateDelete, protocol.Request{RequestedBy: "bob", Reason: "again"})
	b.until(`document.querySelector(".state-SoftDeleted") !== null && document.querySelector(".flash") === null`)
	k.update("vault1", "vm1", protocol.UpdateUndelete, protocol.Request{RequestedBy: "bob"})
	b.until(`document.querySelector(".state-ProtectionStopped") !== null && document.querySelector('form[action$="/resume"] button') !== null`)

	b.do(chromedp.Click(chromedp.CSS(`form[action$="/resume"] button`)))
	b.until(`document.querySelector(".state-Protected") !== null`)
	b.shot("11-item-resumed")

	st := k.status("vault1", "vm1")
	assert.Equal(t, protocol.Protected, st.ProtectionState)
	var ops []string
	for _, e := range st.Audit {
		if e.RequestedBy == "alice@example.com" {
			ops = append(ops, e.Operation+" "+e.Outcome)
		}
	}
	// The refused restore changed nothing, so the item's history has no trace of it.
	assert.Equal(t, []string{"delete accepted", "undelete accepted", "resume accepted"}, ops)
}

func jsString(s string) string {
	return "'" + regexp.MustCompile(`['\\]`).ReplaceAllString(s, `\$0`) + "'"
}

// TestBrowserOnASignedVaultShowsCommandsInsteadOfCriticalActions: the
// console holds no one's key, so on a vault that requires signatures it
// offers no delete and no approval, and shows the commands that would sign
// them, with the values filled in; the audit shows who signed.
func TestBrowserOnASignedVaultShowsCommandsInsteadOfCriticalActions(t *testing.T) {
	b := startBrowser(t)
	k := startCluster(t, Options{})
	k.protect("signed", "vm1")
	alice, bob := signingtest.New(t, "alice@example.com"), signingtest.New(t, "bob@example.com")
	k.signedVault("signed", alice, bob)
	var st item.Status
	require.NoError(t, executeUpdate(k, protocol.WorkflowID("signed", "vm1"), protocol.UpdateDelete,
		k.sign(alice, protocol.UpdateDelete, protocol.WorkflowID("signed", "vm1"), protocol.Request{RequestedBy: "alice@example.com", Reason: "retired"}), &st))
	require.NotNil(t, st.PendingApproval)

	b.do(chromedp.Navigate(k.url + "/vaults/signed/items/vm1"))
	b.until(`document.querySelector(".state-Protected") !== null`)
	assert.Equal(t, "false", b.eval(`String(document.getElementById("confirmName") !== null)`), "no delete form")
	b.do(chromedp.Click(chromedp.CSS("#delete summary")))
	commands := b.text("#delete")
	assert.Contains(t, commands, "requires signed critical operations")
	assert.Contains(t, commands, "go run ./starter delete --vault signed --item vm1 --requested-by 'you@example.com' --reason 'Decommissioned' --key ~/.ssh/id_ed25519")
	assert.Contains(t, commands, "sign delete backup-item/signed/vm1 ~/.ssh/id_ed25519 delete.json > delete.signed.json")
	assert.Contains(t, commands, "temporal workflow update execute --workflow-id backup-item/signed/vm1 --name delete --input-file delete.signed.json")
	assert.Contains(t, b.text("#audit"), "alice@example.com ("+alice.Fingerprint()+")", "the audit shows the key that signed")
	b.shot("12-signed-item")
	// At 1280 px the audit, fingerprints, long words and all, stays inside
	// the page.
	k.update("signed", "vm1", protocol.UpdateStop, protocol.Request{RequestedBy: "bob@example.com", Reason: "ticket-" + strings.Repeat("0123456789", 30)})
	b.do(chromedp.Navigate(k.url + "/vaults/signed/items/vm1"))
	b.until(`document.querySelector(".state-ProtectionStopped") !== null`)
	b.do(chromedp.EmulateViewport(1280, 900))
	assert.Equal(t, "true", b.eval(`String(document.querySelector("table.audit").scrollWidth <= document.querySelector("#audit").clientWidth)`),
		"the audit table is not cut")
	assert.Equal(t, "true", b.eval(`String(document.documentElement.scrollWidth <= window.innerWidth)`))

	b.do(chromedp.Navigate(k.url + "/vaults/signed"))
	b.until(`document.querySelector('tr[data-request="r-1"]') !== null`)
	assert.Contains(t, b.text("main"), "Required: critical operations and approvals are signed")
	assert.Contains(t, b.text("main"), bob.Fingerprint())
	assert.Equal(t, "false", b.eval(`String(document.querySelector('form[action$="/approve"]') !== null)`), "no approve button")
	b.do(chromedp.Click(chromedp.CSS(`tr[data-request="r-1"] details summary`)))
	decide := b.text(`tr[data-request="r-1"] details`)
	assert.Contains(t, decide, "go run ./starter vault approve --vault signed --request r-1 --requested-by 'you@example.com' --key ~/.ssh/id_ed25519")
	assert.Contains(t, decide, `echo '{"requestId":"r-1","requestedBy":"you@example.com"}' > approve.json`)
	assert.Contains(t, decide, "temporal workflow update execute --workflow-id vault/signed --name approve --input-file approve.signed.json")
	b.shot("13-signed-vault")
}

// TestBrowserShowsADeleteWaitingForItsVault: with the vault gone, a delete
// is kept, not lost: the page says it waits and offers to cancel it.
func TestBrowserShowsADeleteWaitingForItsVault(t *testing.T) {
	b := startBrowser(t)
	k := startCluster(t, Options{})
	k.protect("gone", "vm1")
	require.NoError(t, k.c.TerminateWorkflow(t.Context(), protocol.VaultWorkflowID("gone"), "", "the test takes the vault away"))
	item := "/vaults/gone/items/vm1"
	b.do(chromedp.Navigate(k.url+item), chromedp.Click(chromedp.CSS("#delete summary")), chromedp.WaitVisible(chromedp.ID("confirmName")),
		chromedp.SendKeys(chromedp.ID("confirmName"), "vm1"), chromedp.SendKeys(chromedp.ID("reason"), "burst"),
		chromedp.Click(chromedp.CSS(`#delete button[type="submit"]`)))
	b.until(`document.getElementById("name") !== null`)
	b.do(chromedp.SendKeys(chromedp.ID("name"), "alice@example.com"), chromedp.Click(chromedp.CSS(`button[type="submit"]`)))
	b.until(`document.querySelector("#delete") !== null`)
	b.do(chromedp.Click(chromedp.CSS("#delete summary")), chromedp.WaitVisible(chromedp.ID("confirmName")),
		chromedp.SendKeys(chromedp.ID("confirmName"), "vm1"), chromedp.SendKeys(chromedp.ID("reason"), "burst"),
		chromedp.Click(chromedp.CSS(`#delete button[type="submit"]`)))
	b.until(`document.querySelector(".flash") !== null && document.querySelector(".flash").textContent.includes("waits for the vault")`)
	assert.Contains(t, b.text("#status"), "Delete waiting for the vault")
	assert.Contains(t, b.text("#status"), "vault gone could not be asked how deletes of item vm1 are protected: vault gone is not running (Terminated)")
	assert.Equal(t, protocol.Protected, k.status("gone", "vm1").ProtectionState)
	b.shot("14-delete-waiting")

	b.do(chromedp.Click(chromedp.CSS(`form[action$="/undelete"] button`)))
	b.until(`document.querySelector(".flash") !== null && document.querySelector(".flash").textContent.includes("waited for the vault is cancelled")`)
	assert.NotContains(t, b.text("#status"), "Delete waiting for the vault")
	st := k.status("gone", "vm1")
	assert.Nil(t, st.PendingDelete)
	assert.Equal(t, protocol.Protected, st.ProtectionState)
}

// TestBrowserShowsAnApprovalWaitingForItsVault: an approval that arrives
// while the vault is away is kept, not refused, and the page says so.
func TestBrowserShowsAnApprovalWaitingForItsVault(t *testing.T) {
	b := startBrowser(t)
	k := startCluster(t, Options{})
	k.protect("away", "vm1")
	var vs vault.VaultStatus
	require.NoError(t, items.Execute(t.Context(), k.c, client.UpdateWorkflowOptions{
		WorkflowID: protocol.VaultWorkflowID("away"), UpdateName: protocol.UpdateEnableMua,
		Args: []any{protocol.EnableMuaRequest{Approvers: []string{"alice", "bob"}, RequestedBy: "alice"}},
	}, &vs))
	k.update("away", "vm1", protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"})
	require.NoError(t, k.c.TerminateWorkflow(t.Context(), protocol.VaultWorkflowID("away"), "", "the test takes the vault away"))
	require.NoError(t, k.c.SignalWorkflow(t.Context(), protocol.WorkflowID("away", "vm1"), "", protocol.SignalDeleteApproved, protocol.DeleteApproval{RequestID: "r-1"}))
	require.Eventually(t, func() bool { return k.status("away", "vm1").ConfirmingApproval != nil }, 30*time.Second, 200*time.Millisecond)

	b.do(chromedp.Navigate(k.url + "/vaults/away/items/vm1"))
	b.until(`document.querySelector("#status") !== null`)
	assert.Contains(t, b.text("#status"), "Approval waiting for the vault")
	assert.Contains(t, b.text("#status"), "request r-1")
	assert.Contains(t, b.text("#status"), "vault away could not be asked how deletes of item vm1 are protected: vault away is not running (Terminated)")
	assert.Equal(t, protocol.Protected, k.status("away", "vm1").ProtectionState, "nothing deleted without the vault's confirmation")
}

// TestBrowserShowsHeldDeletesWhereTheOperatorLooks: while the mass-delete
// guard holds a delete, the front page says the vault holds deletes and
// how many wait, and the vault's page marks the item and filters on it; at
// 1280 px and at phone width nothing overlaps or is cut.
func TestBrowserShowsHeldDeletesWhereTheOperatorLooks(t *testing.T) {
	b := startBrowser(t)
	k := startCluster(t, Options{RefreshInterval: 500 * time.Millisecond})
	k.protect("burst", "vm1")
	k.protect("burst", "vm2")
	var vs vault.VaultStatus
	require.NoError(t, executeUpdate(k, protocol.VaultWorkflowID("burst"), vault.UpdateSetMassDeleteGuard,
		protocol.SetMassDeleteGuardRequest{Threshold: 1, Window: "1h", RequestedBy: "alice"}, &vs))
	k.update("burst", "vm1", protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"})
	k.update("burst", "vm2", protocol.UpdateDelete, protocol.Request{RequestedBy: "mallory"})
	require.NotNil(t, k.status("burst", "vm2").PendingDelete, "the second delete is held")

	b.do(chromedp.Navigate(k.url + "/"))
	b.until(`document.querySelector('td[data-label="Deletes waiting"] .badge-held') !== null`)
	b.until(`document.querySelector('td[data-label="Deletes waiting"]').textContent.trim().startsWith("1")`)
	assert.Contains(t, b.text(`td[data-label="Deletes waiting"]`), "Holding deletes since")
	b.shot("15-vaults-holding")

	b.do(chromedp.Navigate(k.url + "/vaults/burst"))
	b.until(`document.querySelector('tr[data-item="vm2"] .badge-waiting') !== null`)
	assert.Equal(t, "Delete waiting for the vault", b.text(`tr[data-item="vm2"] .badge-waiting`))
	assert.Equal(t, "false", b.eval(`String(document.querySelector('tr[data-item="vm1"] .badge-waiting') !== null)`), "vm1's delete went through")
	assert.Equal(t, "1", b.text(`.filters a[href="/vaults/burst?state=Waiting"] .count`))
	for _, width := range []int64{1280, 390} {
		b.do(chromedp.EmulateViewport(width, 900))
		assert.Equal(t, "true", b.eval(`String(document.documentElement.scrollWidth <= window.innerWidth)`), "nothing cut at %d px", width)
		// The held badge starts below the line above it, inside its own box.
		assert.Equal(t, "true", b.eval(`(() => {
			const badge = document.querySelector("dd .badge-held").getBoundingClientRect();
			const dd = badge && document.querySelector("dd .badge-held").closest("dd").getBoundingClientRect();
			return String(badge.top >= dd.top && badge.bottom <= dd.bottom);
		})()`), "the held badge overlaps nothing at %d px", width)
		b.shot(fmt.Sprintf("16-vault-holding-%d", width))
	}
	b.do(chromedp.EmulateViewport(1280, 900))

	b.do(chromedp.Click(chromedp.CSS(`.filters a[href="/vaults/burst?state=Waiting"]`)))
	b.until(`document.querySelector('tr[data-item="vm2"]') !== null && document.querySelector('tr[data-item="vm1"]') === null`)

	// The item's page says it in the console's words: where to clear it.
	b.do(chromedp.Navigate(k.url + "/vaults/burst/items/vm2"))
	b.until(`document.querySelector("#status") !== null`)
	assert.Contains(t, b.text("#status"), "the vault's mass-delete guard holds it until an operator clears the hold on the vault's page")
	assert.NotContains(t, b.text("#status"), "(clearMassDeleteHold)", "not the API's name")
}

// TestBrowserShowsAnAnomalyAndAFailedDrill: an item whose source was
// encrypted and one of whose points does not read back is shown where an
// operator looks: the front page counts it, the vault's page marks it and
// filters on it, the item's page says what is suspect, how to clear it,
// and which point failed its drill; at 1280 px and at phone width nothing
// is cut.
func TestBrowserShowsAnAnomalyAndAFailedDrill(t *testing.T) {
	b := startBrowser(t)
	k := startCluster(t, Options{})
	k.encryptedAtTheNextBackup(t, "vault1", "vm1", 60, 50)
	// The documents' backup, before the encryption.
	first := k.status("vault1", "vm1").RecoveryPoints[1]
	// A bit flipped in every pack of the item: its points do not read back.
	root := filepath.Join(k.store, "vault1", "vm1")
	require.NoError(t, filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if rel, _ := filepath.Rel(root, p); err != nil || !d.Type().IsRegular() || !strings.HasPrefix(rel, "p") {
			return err
		}
		data, err := os.ReadFile(p)
		if err == nil {
			for i := 0; i < len(data); i += 64 {
				data[i] ^= 0x01
			}
			err = os.WriteFile(p, data, 0o600)
		}
		return err
	}))
	var st item.Status
	err := items.Execute(t.Context(), k.c, client.UpdateWorkflowOptions{WorkflowID: protocol.WorkflowID("vault1", "vm1"), UpdateName: protocol.UpdateVerify,
		Args: []any{protocol.VerifyRequest{RecoveryPointID: first.ID, RequestedBy: "alice"}}}, &st)
	require.Error(t, err, "the drill finds the damage")
	require.Eventually(t, func() bool {
		counts, err := items.Count(t.Context(), k.c, "vault1")
		return err == nil && counts[items.Anomaly] == 1
	}, 20*time.Second, 100*time.Millisecond)

	b.do(chromedp.Navigate(k.url + "/"))
	b.until(`document.querySelector('td[data-label="Anomalies"] .badge-held') !== null`)
	assert.Equal(t, "1", b.text(`td[data-label="Anomalies"] .badge-held`))
	b.shot("17-vaults-anomaly")

	b.do(chromedp.Navigate(k.url + "/vaults/vault1"))
	b.until(`document.querySelector('tr[data-item="vm1"] .badge-held') !== null`)
	assert.Equal(t, "Anomaly", b.text(`tr[data-item="vm1"] .badge-held`))
	assert.Equal(t, "1", b.text(`.filters a[href="/vaults/vault1?state=Anomaly"] .count`))

	b.do(chromedp.Navigate(k.url + "/vaults/vault1/items/vm1"))
	b.until(`document.querySelector("#status") !== null`)
	assert.Contains(t, b.text("#status"), "Suspect since rp-")
	assert.Contains(t, b.text("#status"), "go run ./starter clear-anomaly --vault vault1 --item vm1")
	assert.Equal(t, "Failed", b.text(`tr[data-point="`+first.ID+`"] td[data-label="Verified"] .badge-held`))
	assert.Contains(t, b.text(`tr[data-point="`+first.ID+`"] td[data-label="Change"]`), "-")
	for _, width := range []int64{1280, 390} {
		b.do(chromedp.EmulateViewport(width, 900))
		assert.Equal(t, "true", b.eval(`String(document.documentElement.scrollWidth <= window.innerWidth)`), "nothing cut at %d px", width)
		b.shot(fmt.Sprintf("18-item-anomaly-%d", width))
	}
	b.do(chromedp.EmulateViewport(1280, 900))
}
