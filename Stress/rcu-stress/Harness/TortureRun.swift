// One torture run: reader and updater threads on a workload, the faults
// around them, the live progress line, and the accounting at the end.
import CLiburcu
import Glibc
import RCU
import Synchronization

struct TortureRun: ImplVisitor {
    let options: TortureOptions

    func visit<I: ReadSideImpl>(_ impl: I) -> TortureResult {
        let counters = TortureCounters()
        switch options.workload {
        case .snapshot:
            let pool = LeasePool()
            if let rcu = impl as? RCUImpl {
                let cell = LibrarySnapshotCell(
                    cell: RCUSnapshot(SnapshotValue(generation: 0, pool: pool), domain: rcu.domain))
                let workload = SnapshotWorkloadRun(torture: SnapshotTorture(cell: cell, counters: counters), pool: pool)
                return run(impl, workload)
            }
            let cell = LiburcuSnapshotCell(SnapshotValue(generation: 0, pool: pool), mode: options.gracePeriodMode)
            let workload = SnapshotWorkloadRun(torture: SnapshotTorture(cell: cell, counters: counters), pool: pool)
            return run(impl, workload)
        case .hashmap:
            return runHashMap(impl, counters: counters)
        case .list:
            return runList(impl, counters: counters)
        case .pointer:
            let ring = ElementRing(count: 16 + 16 * options.updaters)
            let torture = PointerTorture(impl: impl, ring: ring, counters: counters, dwell: options.dwell)
            return run(impl, PointerWorkload(torture: torture, mode: options.gracePeriodMode))
        }
    }

    func run<I: ReadSideImpl, W: TortureWorkload>(_ impl: I, _ workload: W) -> TortureResult {
        let counters = workload.counters
        let stop = StopFlag()
        let registry = ReaderRegistry()
        let faults = Set(options.faults)
        let cpus = onlineCPUs()
        var threads: [StressThreadBox] = []
        var faultThreads: [StressThreadBox] = []

        if faults.contains(.signals) {
            signalReadHook = { workload.signalRead() }
            _ = stress_install_handler(SIGUSR1, signalHandler)
        }

        let progress = ReaderProgress(readers: options.readerCount)
        let rssAtStart = residentKilobytes()
        let start = nowNanoseconds()
        for index in 0..<options.readerCount {
            let published = progress.slot(index)
            threads.append(StressThreadBox(StressThread {
                impl.threadBegin()
                registry.add()
                workload.readerLoop(stop, published)
                registry.remove()
                impl.threadEnd()
            }))
        }
        var updaterThreads: [StressThreadBox] = []
        for _ in 0..<options.updaters {
            updaterThreads.append(StressThreadBox(StressThread {
                impl.threadBegin()
                while !stop.isSet && !Interrupt.isRequested {
                    workload.updateOnce()
                }
                impl.threadEnd()
            }))
        }
        if faults.contains(.migrate) {
            faultThreads.append(StressThreadBox(StressThread {
                var generator = SystemRandomNumberGenerator()
                while !stop.isSet {
                    registry.withRandomThread { tid, _ in
                        _ = stress_pin_thread(tid, Int32(Int.random(in: 0..<cpus, using: &generator)))
                    }
                    sleepSeconds(0.0002)
                }
            }))
        }
        if faults.contains(.signals) {
            faultThreads.append(StressThreadBox(StressThread {
                while !stop.isSet {
                    registry.withRandomThread { _, thread in _ = pthread_kill(thread, SIGUSR1) }
                    sleepSeconds(0.00005)
                }
            }))
        }
        if faults.contains(.fork) {
            // Every 50 ms: fork; the child (one thread, mid-flight copies of
            // every domain) must synchronize, retire and barrier, then exit 0.
            // liburcu-memb's child only exits: memb has no fork support for
            // its registered readers (a synchronize there would wait for
            // threads that do not exist).
            let usesLibrary = impl is RCUImpl
            if usesLibrary {
                // Warm up in the parent what the child will run: a child
                // that first instantiates Swift type metadata can block on a
                // runtime lock another parent thread held at fork(). (One
                // child in the fault matrix hung on a run's first fork, while
                // its threads were starting; likely this, not proven.)
                impl.retireNewObject()
                impl.barrier()
            }
            faultThreads.append(StressThreadBox(StressThread {
                while !stop.isSet {
                    if !forkAndCheckChild({
                        guard usesLibrary else { return true }
                        impl.synchronize()
                        impl.retireNewObject()
                        impl.barrier()
                        return true
                    }) {
                        counters.violations.add(1, ordering: .relaxed)
                        counters.forkFailures.add(1, ordering: .relaxed)
                    }
                    counters.forks.add(1, ordering: .relaxed)
                    sleepSeconds(0.05)
                }
            }))
        }
        if faults.contains(.churn) {
            faultThreads.append(StressThreadBox(StressThread {
                while !stop.isSet {
                    let child = StressThread {
                        impl.threadBegin()
                        registry.add()
                        workload.readBurst(500)
                        registry.remove()
                        impl.threadEnd()
                    }
                    child.join()
                }
            }))
        }

        monitor(options: options, counters: counters, progress: progress, start: start)
        stop.set()
        for thread in faultThreads { thread.join() }
        for thread in updaterThreads { thread.join() }
        for thread in threads { thread.join() }
        if faults.contains(.signals) {
            // No signal is sent after the storm thread was joined, and every
            // reader that could receive one has been joined too.
            signalReadHook = nil
        }
        let leaked = workload.finish()
        let end = nowNanoseconds()

        var result = TortureResult(options: options)
        result.seconds = Double(end - start) / 1e9
        result.reads = counters.reads.load(ordering: .relaxed) + progress.total
        result.signalReads = counters.signalReads.load(ordering: .relaxed)
        result.updates = counters.updates.load(ordering: .relaxed)
        result.gracePeriods = counters.gracePeriods.load(ordering: .relaxed)
        result.violations = counters.violations.load(ordering: .relaxed)
        result.leaked = leaked
        result.ageHistogram = counters.histogram.withLock { $0 }
        result.interrupted = Interrupt.isRequested
        result.details += [("rss_start_kb", rssAtStart), ("rss_end_kb", residentKilobytes()),
                           ("rss_peak_kb", peakResidentKilobytes())]
        if faults.contains(.fork) {
            result.details += [("forks", counters.forks.load(ordering: .relaxed)),
                               ("fork_failures", counters.forkFailures.load(ordering: .relaxed))]
        }
        return result
    }

    /// Waits for the run's end, showing the live counts on a terminal.
    private func monitor(options: TortureOptions, counters: TortureCounters, progress: ReaderProgress, start: UInt64) {
        var line = ProgressLine()
        let label = options.progressLabel ?? "[\(options.flavor.rawValue)]"
        while true {
            let elapsed = Double(nowNanoseconds() - start) / 1e9
            if elapsed >= options.duration || Interrupt.isRequested { break }
            if options.stopOnViolation && counters.violations.load(ordering: .relaxed) > 0 { break }
            line.show("\(label) \(fixed(elapsed, 1))s"
                + " reads \(counters.reads.load(ordering: .relaxed) + progress.total)"
                + " updates \(counters.updates.load(ordering: .relaxed))"
                + " grace periods \(counters.gracePeriods.load(ordering: .relaxed))"
                + " violations \(counters.violations.load(ordering: .relaxed))")
            Interrupt.sleep(min(0.02, options.duration - elapsed))
        }
        line.clear()
    }
}

