// canary-demo-app is the web app the local test host runs in its demo images.
//
// It behaves like the guide's Odoo as far as a canary is concerned: it serves
// pages and a health endpoint, can take seconds to start listening, drains
// in-flight requests on SIGTERM, and each image variant misbehaves in its own way.
// All behaviour comes from environment variables baked into the image (and
// overridable with `docker run -e`):
//
//	APP_VERSION     shown on every page and in the X-App-Version header
//	HEALTH_STATUS   status code of /web/health (default 200)
//	FAIL_PERCENT    percent of other requests answered 500 (default 0)
//	DELAY_MS        added latency of every response (default 0)
//	STARTUP_DELAY   wait before listening, e.g. "3s" (default 0)
//	FAIL_AFTER      from this long after start, fail health and every page (e.g. "20s")
//	PORT            port to listen on (default 8069)
//	IGNORE_SIGTERM  "1": ignore SIGTERM and SIGINT, as an app whose PID 1 is a shell
//	                wrapper does (only SIGKILL stops it)
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func main() {
	version := os.Getenv("APP_VERSION")
	healthStatus := envInt("HEALTH_STATUS", 200)
	failPercent := envInt("FAIL_PERCENT", 0)
	delay := time.Duration(envInt("DELAY_MS", 0)) * time.Millisecond
	port := os.Getenv("PORT")
	if port == "" {
		port = "8069"
	}
	started := time.Now()
	failAfter, _ := time.ParseDuration(os.Getenv("FAIL_AFTER"))
	failing := func() bool { return failAfter > 0 && time.Since(started) > failAfter }
	if d, err := time.ParseDuration(os.Getenv("STARTUP_DELAY")); err == nil && d > 0 {
		log.Printf("INFO starting %s: warming up for %s", version, d)
		time.Sleep(d)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/web/health", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		w.Header().Set("X-App-Version", version)
		status := healthStatus
		if failing() {
			status = http.StatusInternalServerError
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, "{\"status\": %d, \"version\": %q}\n", status, version)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		time.Sleep(delay)
		w.Header().Set("X-App-Version", version)
		if failing() || (failPercent > 0 && rand.IntN(100) < failPercent) {
			log.Printf("ERROR %s %s failed in version %s", r.Method, r.URL.Path, version)
			http.Error(w, "internal error in "+version, http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "canary-demo %s: %s %s\n", version, r.Method, r.URL.Path)
	})

	srv := &http.Server{Addr: ":" + port, Handler: mux}
	stop := make(chan os.Signal, 1)
	if os.Getenv("IGNORE_SIGTERM") == "1" {
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
	} else {
		signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		<-stop
		log.Printf("INFO %s: draining in-flight requests", version)
		ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	log.Printf("INFO %s listening on :%s", version, port)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
	<-drained // ListenAndServe returns as soon as Shutdown starts
	log.Printf("INFO %s stopped", version)
}
