package item

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"recoveryvault/internal/signing"
	"recoveryvault/workflows/protocol"
)

// TestTheWindowShownIsTheWindowThatApplies: what a delete made now would
// get, from the vault's settings, the item's floor and own window, and the
// worker's override; after a delete, the one that was applied.
func TestTheWindowShownIsTheWindowThatApplies(t *testing.T) {
	enabled := func(days int) protocol.SoftDeleteSettings {
		return protocol.SoftDeleteSettings{State: protocol.SoftDeleteEnabled, RetentionDays: days}
	}
	cases := map[string]struct {
		in       protocol.WindowInputs
		vault    protocol.SoftDeleteSettings
		want     time.Duration
		disabled bool
	}{
		"the vault's 30 days over the item's 14":     {protocol.WindowInputs{ItemDays: 14}, protocol.SoftDeleteSettings{State: protocol.SoftDeleteAlwaysOn, RetentionDays: 30}, 30 * day, false},
		"the item's 60 days over the vault's 14":     {protocol.WindowInputs{ItemDays: 60}, enabled(14), 60 * day, false},
		"a floor the vault was lowered below":        {protocol.WindowInputs{ItemDays: 14, Floor: protocol.VaultFloor{RetentionDays: 45}}, enabled(14), 45 * day, false},
		"disabled purges at once":                    {protocol.WindowInputs{ItemDays: 14}, protocol.SoftDeleteSettings{State: protocol.SoftDeleteDisabled, RetentionDays: 14}, 14 * day, true},
		"an AlwaysOn floor keeps soft delete on":     {protocol.WindowInputs{ItemDays: 14, Floor: protocol.VaultFloor{AlwaysOn: true}}, protocol.SoftDeleteSettings{State: protocol.SoftDeleteDisabled, RetentionDays: 14}, 14 * day, false},
		"dev mode replaces the window":               {protocol.WindowInputs{ItemDays: 14, Override: protocol.RetentionOverride{Window: 2 * time.Minute, Replace: true}}, enabled(30), 2 * time.Minute, false},
		"a worker minimum lengthens a short window":  {protocol.WindowInputs{ItemDays: 14, Override: protocol.RetentionOverride{Window: 20 * day}}, enabled(14), 20 * day, false},
		"a worker minimum never shortens a long one": {protocol.WindowInputs{ItemDays: 14, Override: protocol.RetentionOverride{Window: 20 * day}}, enabled(90), 90 * day, false},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got, disabled := c.in.Window(c.vault)
			assert.Equal(t, c.want, got)
			assert.Equal(t, c.disabled, disabled)
		})
	}

	// The item knew 14 days; the vault has since gone to 30: shown is 30.
	before := Status{ProtectionState: protocol.Protected, SoftDeleteRetentionDays: 14, SoftDeleteWindow: "14 days", SoftDeleteWindowInputs: &protocol.WindowInputs{ItemDays: 14}}
	days, text, _ := WindowIfDeletedNow(before, protocol.SoftDeleteSettings{State: protocol.SoftDeleteAlwaysOn, RetentionDays: 30})
	assert.Equal(t, 30, days)
	assert.Equal(t, "30 days", text)
	// Once soft-deleted, the vault's later settings change nothing shown.
	after := Status{ProtectionState: protocol.SoftDeleted, SoftDeleteRetentionDays: 30, SoftDeleteWindow: "30 days"}
	days, text, _ = WindowIfDeletedNow(after, enabled(90))
	assert.Equal(t, 30, days)
	assert.Equal(t, "30 days", text)
}

func TestWindowTextAndPlurals(t *testing.T) {
	assert.Equal(t, "1 day", protocol.WindowText(day))
	assert.Equal(t, "30 days", protocol.WindowText(30*day))
	assert.Equal(t, "2m0s", protocol.WindowText(2*time.Minute))
	assert.Equal(t, "none: soft delete was off, the delete purged at once", protocol.WindowText(0))
	assert.Equal(t, "1 recovery point", protocol.Plural(1, "recovery point"))
	assert.Equal(t, "0 recovery points", protocol.Plural(0, "recovery point"))
	assert.Equal(t, "3 recovery points", protocol.Plural(3, "recovery point"))
}

// TestTheRollingLockCoversTheWindowTheVaultGivesNow: an item that saw its
// vault at 14 days still locks its objects for the 180 the vault gives a
// delete now, so a delete forged into a purge at once fails at the storage.
func TestTheRollingLockCoversTheWindowTheVaultGivesNow(t *testing.T) {
	item := protocol.WindowInputs{ItemDays: 14, Floor: protocol.VaultFloor{RetentionDays: 14}}
	vault := protocol.DefaultSoftDeleteSettings()
	assert.Equal(t, 14*24*time.Hour, protocol.Settings{}.LockWindow(item, vault))
	vault.RetentionDays = 180
	assert.Equal(t, 180*24*time.Hour, protocol.Settings{}.LockWindow(item, vault), "the vault's longer window")
	item.Floor.RetentionDays = 30
	vault.RetentionDays = 14
	assert.Equal(t, 30*24*time.Hour, protocol.Settings{}.LockWindow(item, vault), "never below what the item has seen")
	assert.Equal(t, 40*24*time.Hour, protocol.Settings{SoftDeleteRetention: 40 * 24 * time.Hour}.LockWindow(item, vault), "nor below the worker's floor")
}

func TestAVaultStartedAnewCannotLowerWhatItsItemsSaw(t *testing.T) {
	var f protocol.VaultFloor
	f.See(protocol.Protection{Mua: true, Signers: "abc", Incarnation: "run-1"})
	assert.Equal(t, protocol.VaultFloor{Mua: true, Signers: "abc", Vault: "run-1"}, f)
	for _, c := range []struct {
		name string
		now  protocol.Protection
		want string
	}{
		{"the same incarnation follows its own rules", protocol.Protection{Incarnation: "run-1"}, ""},
		{"anew without approval", protocol.Protection{Signers: "abc", Incarnation: "run-2"}, "no longer requires multi-user authorization"},
		{"anew without signers", protocol.Protection{Mua: true, Incarnation: "run-2"}, "no longer requires the allowed signers it held"},
		{"anew with other signers", protocol.Protection{Mua: true, Signers: "xyz", Incarnation: "run-2"}, "the allowed signers it held"},
		{"anew as it was", protocol.Protection{Mua: true, Signers: "abc", Incarnation: "run-2"}, ""},
		{"not read", protocol.Protection{}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := f.Weakened("v", c.now)
			if c.want == "" {
				assert.Empty(t, got)
				return
			}
			assert.Contains(t, got, c.want)
			g := f
			g.See(c.now)
			assert.Equal(t, f, g, "what it saw is kept")
		})
	}
	f.See(protocol.Protection{Mua: true, Signers: "abc", Incarnation: "run-2"})
	assert.Equal(t, "run-2", f.Vault, "an incarnation that requires as much is taken")
	f.See(protocol.Protection{Incarnation: "run-2"})
	assert.False(t, f.Mua, "within it, its own rules change what it requires")

	a, b := "alice ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n", "bob ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHw0ZHGp3v6q8i2JvJ9v2pPq5cZ3m1nFQXq0o5W3yqkO\n"
	assert.Equal(t, signing.SignersDigest(a+b), signing.SignersDigest("# comment\n"+b+a), "order and comments do not matter")
	assert.NotEqual(t, signing.SignersDigest(a), signing.SignersDigest(a+b))
	assert.Empty(t, signing.SignersDigest(""))
}
