// gogrok - the peer of sluice's grok benchmark (tests/bench/pipeline_bench.py):
// Elastic's Go grok library (github.com/elastic/go-grok, Go's RE2-style regexp)
// parses every line of a corpus with its COMBINEDAPACHELOG on one goroutine.
// Figures only.
//
//	gogrok -f CORPUS [-n LINES] [-seconds S] [-mode grok|pipeline] [-pattern EXPR]
//
// The corpus is read into memory first; the clock runs over -n parses, cycling
// through the corpus, or fewer when -seconds of wall time ran out first. Modes:
//
//	grok      g.ParseString: the captures as strings (what sluice's grok filter stores)
//	pipeline  g.ParseTypedString (status and size as integers, the mutate convert),
//	          then the HTTPDATE parsed with time.Parse and written as UTC ISO8601
//	          with milliseconds (the date filter), timestamp removed (remove_fields)
//
// go-grok's COMBINEDAPACHELOG is HTTPD_COMBINEDLOG with ECS field names
// (source.address, http.request.method, url.original, http.response.status_code:int,
// http.response.body.size:long, http.request.referrer, user_agent.original, ...);
// referrer and agent are captured without their quotes ("(?:-|%{DATA})"), and the
// fallback request alternative is unnamed (no rawrequest). The shape of the regex is
// the same as Logstash's legacy one that sluice uses.
//
// Prints one line of key=value pairs: lines, hits, seconds (wall), lines_per_s,
// thread_cpu_s (CPU time of the parsing thread, CLOCK_THREAD_CPUTIME_ID, so other
// load on the machine does not count), ns_per_line (from it), process_cpu_s (all
// threads, GC included) and cpu_s_per_million (from process_cpu_s).
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"

	"github.com/elastic/go-grok"
	"github.com/elastic/go-grok/patterns"
)

const clockThreadCPUTimeID = 3 // CLOCK_THREAD_CPUTIME_ID

func threadCPU() float64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0)
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

func processCPU() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

func main() {
	path := flag.String("f", "", "corpus: one line per event")
	n := flag.Int("n", 0, "parses to time (default: every corpus line once)")
	mode := flag.String("mode", "grok", "grok | pipeline")
	pattern := flag.String("pattern", "%{COMBINEDAPACHELOG}", "grok expression")
	budget := flag.Float64("seconds", 0, "stop earlier, after this many wall seconds (0: no limit)")
	flag.Parse()
	if *path == "" || (*mode != "grok" && *mode != "pipeline") {
		flag.Usage()
		os.Exit(2)
	}

	f, err := os.Open(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	f.Close()
	if len(lines) == 0 {
		fmt.Fprintln(os.Stderr, "no lines")
		os.Exit(2)
	}
	if *n <= 0 {
		*n = len(lines)
	}

	g, err := grok.NewWithPatterns(patterns.Httpd)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := g.Compile(*pattern, true); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}

	runtime.LockOSThread() // so that the thread CPU clock is this goroutine's
	hits := 0
	sink := 0
	pc0, tc0, t0 := processCPU(), threadCPU(), time.Now()
	done := 0
	deadline := t0.Add(time.Duration(*budget * float64(time.Second)))
	for i := 0; i < *n; i++ {
		if *budget > 0 && i&255 == 0 && i > 0 && time.Now().After(deadline) {
			break
		}
		done++
		line := lines[i%len(lines)]
		if *mode == "grok" {
			m, err := g.ParseString(line)
			if err == nil && len(m) > 0 {
				hits++
				sink += len(m)
			}
			continue
		}
		m, err := g.ParseTypedString(line)
		if err != nil || len(m) == 0 {
			continue
		}
		hits++
		if ts, ok := m["timestamp"].(string); ok {
			if t, err := time.Parse("02/Jan/2006:15:04:05 -0700", ts); err == nil {
				m["@timestamp"] = t.UTC().Format("2006-01-02T15:04:05.000Z")
				delete(m, "timestamp")
			}
		}
		sink += len(m)
	}
	wall := time.Since(t0).Seconds()
	tcpu := threadCPU() - tc0
	pcpu := processCPU() - pc0
	fmt.Printf("lines=%d hits=%d seconds=%.4f lines_per_s=%.0f thread_cpu_s=%.4f ns_per_line=%.0f "+
		"process_cpu_s=%.4f cpu_s_per_million=%.3f fields=%d mode=%s\n",
		done, hits, wall, float64(done)/wall, tcpu, tcpu/float64(done)*1e9, pcpu,
		pcpu/float64(done)*1e6, sink/max(hits, 1), *mode)
}
