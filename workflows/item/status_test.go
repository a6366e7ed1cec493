package item

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"recoveryvault/workflows/protocol"
)

func TestItemInputValidation(t *testing.T) {
	valid := func() ItemInput {
		return ItemInput{VaultID: "vault1", ItemID: "vm1", SourcePath: "/data/vm1", Policy: protocol.Policy{Frequency: "24h", RetentionDays: 30}}
	}
	in := valid()
	require.NoError(t, in.Validate())
	assert.Equal(t, 14, in.SoftDeleteRetentionDays, "default soft-delete retention")

	cases := map[string]struct {
		change func(*ItemInput)
		want   string
	}{
		"missing vault":         {func(i *ItemInput) { i.VaultID = "" }, "vaultId is missing"},
		"vault with slash":      {func(i *ItemInput) { i.VaultID = "a/b" }, `vaultId "a/b" is not valid`},
		"missing item":          {func(i *ItemInput) { i.ItemID = "" }, "itemId is missing"},
		"item dot-dot":          {func(i *ItemInput) { i.ItemID = ".." }, "is not valid"},
		"missing source":        {func(i *ItemInput) { i.SourcePath = "" }, "sourcePath is missing"},
		"relative source":       {func(i *ItemInput) { i.SourcePath = "data" }, "is not absolute"},
		"frequency missing":     {func(i *ItemInput) { i.Policy.Frequency = "" }, "policy.frequency is missing"},
		"frequency garbage":     {func(i *ItemInput) { i.Policy.Frequency = "often" }, "is not a duration"},
		"frequency too short":   {func(i *ItemInput) { i.Policy.Frequency = "30s" }, "too short"},
		"retention too short":   {func(i *ItemInput) { i.Policy.RetentionDays = 0 }, "at least 1 day"},
		"retention overflowing": {func(i *ItemInput) { i.Policy.RetentionDays = 200000 }, "at most 3650 days"},
		"source path too long":  {func(i *ItemInput) { i.SourcePath = "/" + strings.Repeat("d", 4<<10) }, "sourcePath of 4097 bytes is over its bound"},
		"soft delete too short": {func(i *ItemInput) { i.SoftDeleteRetentionDays = 7 }, "14 to 180 days"},
		"soft delete too long":  {func(i *ItemInput) { i.SoftDeleteRetentionDays = 181 }, "14 to 180 days"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			in := valid()
			c.change(&in)
			assert.ErrorContains(t, in.Validate(), c.want)
		})
	}
}

func TestRetentionDaysUnderADevModeWindowAreTheDaysItReplaced(t *testing.T) {
	const day = 24 * time.Hour
	cases := map[string]struct {
		window time.Duration
		in     protocol.WindowInputs
		want   int
	}{
		"the default window":            {14 * day, protocol.WindowInputs{}, 14},
		"a vault's 30 days":             {30 * day, protocol.WindowInputs{}, 30},
		"dev mode, item started by CLI": {2 * time.Minute, protocol.WindowInputs{}, 14},
		"dev mode, item asking 60 days": {2 * time.Minute, protocol.WindowInputs{ItemDays: 60}, 60},
		"dev mode, vault floor 30 days": {2 * time.Minute, protocol.WindowInputs{Floor: protocol.VaultFloor{RetentionDays: 30}}, 30},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, c.want, retentionDays(c.window, c.in))
		})
	}
}
