package store

import (
	"syscall"
	"time"
)

// changeTime is when the kernel last saw the entry's inode change: a
// program can set a file's modification time back, never this.
func changeTime(sys any) time.Time {
	if st, ok := sys.(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Unix())
	}
	return time.Time{}
}
