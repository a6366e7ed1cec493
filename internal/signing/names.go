package signing

import (
	"strings"
)

// SameIdentity compares identities as people type them: "Alice " is alice.
func SameIdentity(a, b string) bool {
	return strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
}

// ReservedName is a name no person signs with: the workflows' own
// (system, scheduler) or anonymous.
func ReservedName(n string) bool {
	n = strings.TrimSpace(n)
	return n == "" || SameIdentity(n, Anonymous) || SameIdentity(n, System) || SameIdentity(n, Scheduler)
}
