package main

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// A server that streamed a lot of output keeps the heap that took: the Go
// runtime reuses freed memory and gives it back to the system only slowly,
// and not before a collection lowers its goal, so after 90 MB of output the
// process would hold tens of MiB it no longer uses, for hours. releaseMemory
// gives it back once the process is quiet again.
const (
	releaseEvery = 2 * time.Second
	// quietAllocs: less allocated than this in one releaseEvery is quiet.
	quietAllocs = 1 << 20
	// releaseAbove: the heap held beyond the live heap that is worth a
	// collection and a release (both cost about a millisecond here).
	releaseAbove = 8 << 20
)

// releaseMemory checks every releaseEvery, until ctx ends, whether the
// process is quiet and holds much more heap than it uses, and then returns
// the difference to the system.
func releaseMemory(ctx context.Context) {
	samples := []metrics.Sample{
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	t := time.NewTicker(releaseEvery)
	defer t.Stop()
	var lastAllocs uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(samples)
		allocs := samples[0].Value.Uint64()
		quiet := allocs-lastAllocs < quietAllocs
		lastAllocs = allocs
		held := samples[2].Value.Uint64() + samples[3].Value.Uint64() + samples[4].Value.Uint64()
		if quiet && held > samples[1].Value.Uint64()+releaseAbove {
			debug.FreeOSMemory()
		}
	}
}
