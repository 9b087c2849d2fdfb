package chdb

import (
	"syscall"
	"unsafe"
)

// kernelSigaction is struct sigaction as the rt_sigaction system call sees it
// on linux/amd64 and arm64: handler, flags, restorer, mask.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// savedHandlers are the process's signal dispositions at one moment.
type savedHandlers map[int]kernelSigaction

// saveSignalHandlers reads every signal's disposition with the raw system
// call (not os/signal, which only knows Go's view) so that restore can undo
// whatever libchdb installs while it loads and connects.
func saveSignalHandlers() savedHandlers {
	s := savedHandlers{}
	for sig := 1; sig <= 64; sig++ {
		if sig == int(syscall.SIGKILL) || sig == int(syscall.SIGSTOP) {
			continue
		}
		var old kernelSigaction
		_, _, errno := syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), 0,
			uintptr(unsafe.Pointer(&old)), 8, 0, 0)
		if errno == 0 {
			s[sig] = old
		}
	}
	return s
}

func (s savedHandlers) restore() {
	for sig, act := range s {
		act := act
		syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig),
			uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	}
}
