package base

import (
	"context"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kouple/kouple/agent"
)

// Health is the base's health data in Arklet's shape: jvm and cpu keys where a Go equivalent exists (memory
// figures ModuleController reads for node capacity), plus the Go runtime and every module.
func (b *Base) Health(ctx context.Context) any {
	var ms goruntime.MemStats
	goruntime.ReadMemStats(&ms)
	rss := readRSS()
	limit := memoryLimit()
	mb := func(n uint64) float64 { return float64(n) / (1 << 20) }
	var modules []agent.BizInfo
	for _, mod := range b.registry.Modules() {
		for _, v := range mod.Versions() {
			modules = append(modules, agent.NewBizInfo(v, v == mod.Active(), b.Granted(v.Manifest)))
		}
	}
	user, sys := cpuTimes()
	health := map[string]any{
		"jvm": map[string]any{
			"java version":             goruntime.Version(),
			"max memory(M)":            mb(limit),
			"total memory(M)":          mb(ms.Sys),
			"free memory(M)":           mb(ms.HeapIdle),
			"used heap memory(M)":      mb(ms.HeapAlloc),
			"committed heap memory(M)": mb(ms.HeapSys),
			"max heap memory(M)":       mb(limit),
			"run time(s)":              time.Since(b.started).Seconds(),
			// ModuleController derives a vnode's memory capacity from these.
			"java used metaspace":      int64(rss),
			"java committed metaspace": int64(rss),
			"java max metaspace":       int64(limit),
		},
		"cpu": map[string]any{
			"count":          goruntime.NumCPU(),
			"type":           goruntime.GOARCH,
			"user time(s)":   user,
			"system time(s)": sys,
			"gomaxprocs":     goruntime.GOMAXPROCS(0),
		},
		"masterBizInfo": map[string]any{
			"bizName": b.cfg.Name, "bizVersion": b.cfg.Version, "bizState": "ACTIVATED", "webContextPath": "/",
		},
		"go": map[string]any{
			"version":        goruntime.Version(),
			"goroutines":     goruntime.NumGoroutine(),
			"heapAlloc":      ms.HeapAlloc,
			"heapSys":        ms.HeapSys,
			"gcCycles":       ms.NumGC,
			"gcPauseTotalNs": ms.PauseTotalNs,
			"rssBytes":       rss,
			"memoryLimit":    limit,
		},
		"base": map[string]any{
			"identity": b.id, "name": b.cfg.Name, "version": b.cfg.Version, "cluster": b.cfg.Cluster, "env": b.cfg.Env,
			"gateway": b.GatewayURL(), "agent": b.AgentURL(), "dataDir": b.cfg.DataDir,
			"authRequired": b.authRequired, "insecure": b.insecure,
		},
		"bizListInfo": modules,
		"native":      b.nativeHealth(),
	}
	if b.insecure {
		health["warning"] = "INSECURE: the agent listens beyond loopback without requiring credentials (--insecure)"
	}
	return health
}

// readRSS is the process's resident memory in bytes (0 if unknown).
func readRSS() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// memoryLimit is the memory the base may use: its cgroup limit, else the machine's memory.
func memoryLimit() uint64 {
	if data, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64); err == nil {
			return n
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// cpuTimes is the CPU time the process used, in seconds.
func cpuTimes() (user, sys float64) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano()).Seconds(), time.Duration(ru.Stime.Nano()).Seconds()
}
