package runtime

import (
	"sync"
	"sync/atomic"
)

// mutex is sync.Mutex; the alias keeps callCtx's field list readable.
type mutex = sync.Mutex

// maxIdleWorkers bounds the workers kept waiting for calls.
const maxIdleWorkers = 64

// workerPool runs calls on goroutines that outlive a call, so a node under
// load does not start a goroutine per call: a call goes to an idle worker if
// one is waiting, else to a new one. Workers beyond maxIdleWorkers exit when
// they run out of work.
type workerPool struct {
	work chan *ServerCall // unbuffered: a send succeeds only into an idle worker
	quit chan struct{}
	idle atomic.Int32
	wg   sync.WaitGroup
	mu   sync.Mutex // orders wg.Add against stop's wg.Wait
	done bool
}

func (w *workerPool) init() {
	w.work = make(chan *ServerCall)
	w.quit = make(chan struct{})
}

// run serves sc on an idle worker or a new one.
func (w *workerPool) run(sc *ServerCall) {
	select {
	case w.work <- sc:
		return
	default:
	}
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		go sc.serve() // the node is stopping; this call is still counted in Node.serving
		return
	}
	w.wg.Add(1)
	w.mu.Unlock()
	go w.loop(sc)
}

func (w *workerPool) loop(sc *ServerCall) {
	defer w.wg.Done()
	for {
		sc.serve()
		if w.idle.Add(1) > maxIdleWorkers {
			w.idle.Add(-1)
			return
		}
		select {
		case sc = <-w.work:
			w.idle.Add(-1)
		case <-w.quit:
			w.idle.Add(-1)
			return
		}
	}
}

// stop ends the idle workers and waits for all workers to end.
func (w *workerPool) stop() {
	w.mu.Lock()
	if !w.done {
		w.done = true
		close(w.quit)
	}
	w.mu.Unlock()
	w.wg.Wait()
}
