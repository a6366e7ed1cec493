//go:build !linux

package store

import "time"

// changeTime is unknown here: a backup trusts size, time and mode alone.
func changeTime(any) time.Time { return time.Time{} }
