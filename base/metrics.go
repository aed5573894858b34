package base

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kouple/kouple/module"
)

// metrics is what the agent's /metrics serves in Prometheus's text format: every module version's figures,
// read from the registry at scrape time (the same numbers `kouple status` and health show), the gateway's
// latency histogram per module version, the base's own, and the Go runtime's and process's.
type metrics struct {
	b       *Base
	reg     *prometheus.Registry
	latency *prometheus.HistogramVec

	mu   sync.Mutex
	seen map[[2]string]bool // module, version pairs the histogram has series for
}

var states = []module.State{module.Unresolved, module.Resolved, module.Activated, module.Deactivated, module.Broken, module.Stopped}

var (
	labels     = []string{"module", "version"}
	dRequests  = prometheus.NewDesc("kouple_module_requests_total", "Requests and calls a module version served.", labels, nil)
	dErrors    = prometheus.NewDesc("kouple_module_errors_total", "Requests and calls that failed in the module version (5xx from the runtime, failed calls).", labels, nil)
	dRefused   = prometheus.NewDesc("kouple_module_refused_total", "Requests refused because the module version was at its in-flight and queue limits.", labels, nil)
	dInFlight  = prometheus.NewDesc("kouple_module_in_flight", "Requests and calls being served by the module version.", labels, nil)
	dInstances = prometheus.NewDesc("kouple_module_instances", "Instances of the module version serving now.", labels, nil)
	dMemory    = prometheus.NewDesc("kouple_module_memory_bytes", "Linear memory of all the module version's instances.", labels, nil)
	dCPU       = prometheus.NewDesc("kouple_module_cpu_seconds_total", "Time spent computing in the module version's code.", labels, nil)
	dRestarts  = prometheus.NewDesc("kouple_module_restarts_total", "Instances of the module version replaced after a failure.", labels, nil)
	dState     = prometheus.NewDesc("kouple_module_state", "1 for the module version's current state, 0 for the others.", append(labels, "state"), nil)
	dActive    = prometheus.NewDesc("kouple_module_active", "1 if the version is its module's active version.", labels, nil)
	dBase      = prometheus.NewDesc("kouple_base_info", "The base's identity; always 1.", []string{"identity", "name", "version", "cluster", "env"}, nil)
	dStart     = prometheus.NewDesc("kouple_base_start_time_seconds", "When the base started, in Unix seconds.", nil, nil)
	dVersions  = prometheus.NewDesc("kouple_base_module_versions", "Module versions installed in the base.", nil, nil)
	dFollowers = prometheus.NewDesc("kouple_base_log_followers", "Clients following logs (kouple logs -f).", nil, nil)
)

func newMetrics(b *Base) *metrics {
	m := &metrics{
		b:   b,
		reg: prometheus.NewRegistry(),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kouple_module_request_duration_seconds",
			Help:    "Time the gateway took to answer requests routed to a module version, by module and version.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, labels),
		seen: map[[2]string]bool{},
	}
	m.reg.MustRegister(m, m.latency, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observe records a gateway request's duration.
func (m *metrics) observe(v *module.Version, d time.Duration) {
	if m == nil {
		return
	}
	k := [2]string{v.Manifest.Name, v.Manifest.Version}
	m.latency.WithLabelValues(k[0], k[1]).Observe(d.Seconds())
	m.mu.Lock()
	m.seen[k] = true
	m.mu.Unlock()
}

// Handler serves the metrics in the Prometheus text (or negotiated) format.
func (m *metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: nil})
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dRequests, dErrors, dRefused, dInFlight, dInstances, dMemory, dCPU, dRestarts, dState, dActive, dBase, dStart, dVersions, dFollowers} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	b := m.b
	c := b.cfg
	ch <- prometheus.MustNewConstMetric(dBase, prometheus.GaugeValue, 1, b.id, c.Name, c.Version, c.Cluster, c.Env)
	ch <- prometheus.MustNewConstMetric(dStart, prometheus.GaugeValue, float64(b.started.UnixNano())/1e9)
	ch <- prometheus.MustNewConstMetric(dFollowers, prometheus.GaugeValue, float64(b.logs.Followers()))
	present := map[[2]string]bool{}
	n := 0
	for _, mod := range b.registry.Modules() {
		active := mod.Active()
		for _, v := range mod.Versions() {
			n++
			lv := []string{mod.Name, v.Manifest.Version}
			present[[2]string{lv[0], lv[1]}] = true
			s := v.Stats()
			ch <- prometheus.MustNewConstMetric(dRequests, prometheus.CounterValue, float64(s.Requests), lv...)
			ch <- prometheus.MustNewConstMetric(dErrors, prometheus.CounterValue, float64(s.Errors), lv...)
			ch <- prometheus.MustNewConstMetric(dRefused, prometheus.CounterValue, float64(s.Refused), lv...)
			ch <- prometheus.MustNewConstMetric(dInFlight, prometheus.GaugeValue, float64(s.InFlight), lv...)
			ch <- prometheus.MustNewConstMetric(dInstances, prometheus.GaugeValue, float64(s.Instances), lv...)
			ch <- prometheus.MustNewConstMetric(dMemory, prometheus.GaugeValue, float64(s.MemoryBytes), lv...)
			ch <- prometheus.MustNewConstMetric(dCPU, prometheus.CounterValue, s.CPUSeconds, lv...)
			ch <- prometheus.MustNewConstMetric(dRestarts, prometheus.CounterValue, float64(s.Restarts), lv...)
			state := v.State()
			for _, st := range states {
				val := 0.0
				if st == state {
					val = 1
				}
				ch <- prometheus.MustNewConstMetric(dState, prometheus.GaugeValue, val, lv[0], lv[1], string(st))
			}
			act := 0.0
			if v == active {
				act = 1
			}
			ch <- prometheus.MustNewConstMetric(dActive, prometheus.GaugeValue, act, lv...)
		}
	}
	ch <- prometheus.MustNewConstMetric(dVersions, prometheus.GaugeValue, float64(n))
	// Forget the latency of versions that are gone, so an often-redeployed module does not grow the scrape.
	m.mu.Lock()
	for k := range m.seen {
		if !present[k] {
			m.latency.DeleteLabelValues(k[0], k[1])
			delete(m.seen, k)
		}
	}
	m.mu.Unlock()
}
