// Process plumbing for cross-process benchmarks:
//  - ShmRegion: a POSIX shared-memory region whose name is unique per process and is removed by
//    its destructor, by the fatal-signal handlers (SIGINT, SIGTERM, SIGHUP, SIGALRM watchdog)
//    and when a forked peer fails;
//  - run_forked(): fork a peer, run both sides, reap the peer, turn its failure into one line.
//
// Thread safety: install_signal_handlers() and run_forked() from the main thread only, with no
// other thread running while fork() happens. ShmName/ShmRegion may be created on any thread but
// at most kMaxNames at once.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

namespace evring::bench {

namespace detail {

inline constexpr int kMaxNames = 16;
inline constexpr size_t kNameBytes = 96;
// Registry read by signal handlers: a slot is filled, then published by the release store.
inline char g_names[kMaxNames][kNameBytes];
inline std::atomic<int> g_name_used[kMaxNames];
inline const char* g_prog = "bench";
inline std::atomic<const char*> g_activity{"startup"};
inline std::atomic<pid_t> g_child{0};
inline std::atomic<char*> g_child_err{nullptr};  // in shared memory, written by the child
inline std::atomic<int> g_child_status{0};
inline std::atomic<bool> g_child_reaped{false};

inline void unlink_all() noexcept {
  for (int i = 0; i < kMaxNames; ++i) {
    if (g_name_used[i].load(std::memory_order_acquire) == 1) shm_unlink(g_names[i]);
  }
}

// Async-signal-safe stderr writers.
inline void put(const char* s) noexcept {
  if (s != nullptr) {
    ssize_t ignored = write(2, s, strlen(s));
    (void)ignored;
  }
}
inline void put_int(long v) noexcept {
  char buf[24];
  int i = sizeof(buf);
  buf[--i] = '\0';
  const bool neg = v < 0;
  unsigned long u = neg ? 0ul - static_cast<unsigned long>(v) : static_cast<unsigned long>(v);
  do {
    buf[--i] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0 && i > 1);
  if (neg) buf[--i] = '-';
  put(buf + i);
}

inline void put_child_failure(pid_t pid, int status) noexcept {
  put(g_prog), put(": "), put(g_activity.load()), put(": peer process "), put_int(pid);
  char* err = g_child_err.load();
  if (err != nullptr && err[0] != '\0') {
    put(" failed: "), put(err);
  } else if (WIFEXITED(status)) {
    put(" exited with status "), put_int(WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    put(" was killed by signal "), put_int(WTERMSIG(status));
  }
  put("\n");
}

inline void on_fatal_signal(int sig) noexcept {
  unlink_all();
  const pid_t child = g_child.exchange(0);
  if (child > 0) {
    kill(child, SIGKILL);
    waitpid(child, nullptr, 0);
  }
  put(g_prog), put(": "), put(g_activity.load());
  if (sig == SIGALRM) {
    put(": watchdog expired, a peer hung; aborted\n");
  } else {
    put(": interrupted by signal "), put_int(sig), put("\n");
  }
  _exit(sig == SIGALRM ? 1 : 128 + sig);
}

// A peer that exits 0 is left for run_forked() to see; any other end stops the whole run now,
// so the surviving side never spins on a ring nobody serves.
inline void on_sigchld(int) noexcept {
  const int saved_errno = errno;
  const pid_t child = g_child.load();
  int status = 0;
  if (child > 0 && waitpid(child, &status, WNOHANG) == child) {
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      g_child_status.store(status);
      g_child_reaped.store(true);
    } else {
      unlink_all();
      put_child_failure(child, status);
      _exit(1);
    }
  }
  errno = saved_errno;
}

}  // namespace detail

// Call once at the start of main(). `prog` must outlive the program (a string literal).
inline void install_signal_handlers(const char* prog) {
  detail::g_prog = prog;
  struct sigaction sa {};
  sigemptyset(&sa.sa_mask);
  sa.sa_handler = detail::on_fatal_signal;
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGALRM}) sigaction(sig, &sa, nullptr);
  sa.sa_handler = detail::on_sigchld;
  sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, nullptr);
}

// Names what is running, for the one-line messages of the handlers. `what` must outlive its use.
inline void set_activity(const char* what) { detail::g_activity.store(what); }

// Arms alarm(seconds) as a hang watchdog for the scope; SIGALRM aborts the run cleanly.
class Watchdog {
 public:
  explicit Watchdog(unsigned seconds) { alarm(seconds); }
  ~Watchdog() { alarm(0); }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
};

// A shared-memory name "/<prefix>-<pid>-<tag>", registered for removal until destroyed.
class ShmName {
 public:
  ShmName(const char* prefix, const char* tag) {
    name_ = "/" + std::string(prefix) + "-" + std::to_string(getpid()) + "-" + tag;
    if (name_.size() >= detail::kNameBytes) throw std::length_error("shm name too long");
    for (int i = 0; i < detail::kMaxNames; ++i) {
      int expected = 0;
      if (detail::g_name_used[i].compare_exchange_strong(expected, 2)) {  // 2 = being filled
        std::memcpy(detail::g_names[i], name_.c_str(), name_.size() + 1);
        detail::g_name_used[i].store(1, std::memory_order_release);
        slot_ = i;
        shm_unlink(name_.c_str());  // a stale leftover of a recycled pid
        return;
      }
    }
    throw std::runtime_error("too many shared-memory names in use");
  }
  ~ShmName() {
    shm_unlink(name_.c_str());
    detail::g_name_used[slot_].store(0, std::memory_order_release);
  }
  ShmName(const ShmName&) = delete;
  ShmName& operator=(const ShmName&) = delete;

  const char* posix() const { return name_.c_str(); }      // with the leading '/'
  const char* boost() const { return name_.c_str() + 1; }  // Boost.Interprocess adds the '/'

 private:
  std::string name_;
  int slot_ = -1;
};

// A zero-filled POSIX shared-memory region, created and mapped by the constructor; a forked
// peer inherits the mapping. Unmapped and unlinked by the destructor.
class ShmRegion {
 public:
  ShmRegion(const char* prefix, const char* tag, size_t bytes) : name_(prefix, tag), bytes_(bytes) {
    const int fd = shm_open(name_.posix(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0)
      throw std::runtime_error(std::string("shm_open ") + name_.posix() + ": " +
                               std::strerror(errno));
    if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      const int e = errno;
      close(fd);
      throw std::runtime_error(std::string("ftruncate ") + name_.posix() + ": " + std::strerror(e));
    }
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    const int e = errno;
    close(fd);
    if (p == MAP_FAILED)
      throw std::runtime_error(std::string("mmap ") + name_.posix() + ": " + std::strerror(e));
    base_ = static_cast<std::byte*>(p);
  }
  ~ShmRegion() { munmap(base_, bytes_); }
  ShmRegion(const ShmRegion&) = delete;
  ShmRegion& operator=(const ShmRegion&) = delete;

  std::byte* data() const { return base_; }
  size_t size() const { return bytes_; }

 private:
  ShmName name_;
  size_t bytes_;
  std::byte* base_ = nullptr;
};

// Forks a peer that runs child() and _exit()s, runs parent() here, then reaps the peer.
// A child exception becomes its failure text in `err` (shared memory, `err_bytes` long), which
// the SIGCHLD handler prints as one line before exiting 1. A parent exception kills the peer,
// reaps it and propagates. Returns normally only if both sides succeeded.
template <class ChildFn, class ParentFn>
void run_forked(char* err, size_t err_bytes, ChildFn&& child, ParentFn&& parent) {
  std::fflush(nullptr);
  err[0] = '\0';
  detail::g_child_err.store(err);
  detail::g_child_reaped.store(false);
  const pid_t parent_pid = getpid();
  // SIGCHLD stays blocked until g_child names the peer, so a peer that fails at once is still
  // reported by the handler instead of leaving parent() spinning.
  sigset_t chld;
  sigset_t saved;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, &saved);
  const pid_t pid = fork();
  if (pid < 0) {
    const int e = errno;
    sigprocmask(SIG_SETMASK, &saved, nullptr);
    throw std::runtime_error(std::string("fork: ") + std::strerror(e));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent_pid) _exit(1);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGALRM, SIGCHLD}) signal(sig, SIG_DFL);
    sigprocmask(SIG_SETMASK, &saved, nullptr);
    int rc = 0;
    try {
      child();
    } catch (const std::exception& e) {
      std::snprintf(err, err_bytes, "%s", e.what());
      rc = 1;
    } catch (...) {
      std::snprintf(err, err_bytes, "unknown exception");
      rc = 1;
    }
    _exit(rc);
  }
  detail::g_child.store(pid);
  sigprocmask(SIG_SETMASK, &saved, nullptr);
  auto reap = [pid]() {
    int status = 0;
    while (true) {
      if (waitpid(pid, &status, 0) == pid) return status;
      if (errno == EINTR) continue;
      if (errno == ECHILD && detail::g_child_reaped.load()) return detail::g_child_status.load();
      throw std::runtime_error(std::string("waitpid: ") + std::strerror(errno));
    }
  };
  try {
    parent();
  } catch (...) {
    detail::g_child.store(0);  // the handler must not report the kill below as the failure
    kill(pid, SIGKILL);
    reap();
    throw;
  }
  const int status = reap();
  detail::g_child.store(0);
  if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {  // the handler lost the race to reap
    std::string what = "peer process " + std::to_string(pid);
    if (err[0] != '\0') {
      what += std::string(" failed: ") + err;
    } else if (WIFEXITED(status)) {
      what += " exited with status " + std::to_string(WEXITSTATUS(status));
    } else {
      what += " was killed by signal " + std::to_string(WTERMSIG(status));
    }
    throw std::runtime_error(what);
  }
}

}  // namespace evring::bench
