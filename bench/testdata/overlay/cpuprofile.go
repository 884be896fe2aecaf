package main

// This file is not part of retain. The benchmark harness compiles it into its
// own build of cmd/retain with go build -overlay, so that it can take a CPU
// profile of the real worker process without a flag in the shipped command:
// SIGUSR1 starts a profile into $RETAIN_BENCH_CPUPROFILE, SIGUSR2 stops it.

import (
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func init() {
	path := os.Getenv("RETAIN_BENCH_CPUPROFILE")
	if path == "" {
		return
	}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		var f *os.File
		for s := range sig {
			switch {
			case s == syscall.SIGUSR1 && f == nil:
				var err error
				if f, err = os.Create(path); err == nil {
					pprof.StartCPUProfile(f)
				}
			case s == syscall.SIGUSR2 && f != nil:
				pprof.StopCPUProfile()
				f.Close()
				f = nil
			}
		}
	}()
}
