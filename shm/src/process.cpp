#include "evring/shm/process.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace evring::shm {

namespace {

// Start time and state letter of a process; start 0 when it does not exist.
struct ProcStat {
  std::uint64_t start_time = 0;
  char state = '?';
};

ProcStat read_proc_stat(pid_t pid) {
  ProcStat out;
  if (pid <= 0) return out;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return out;
  buf[n] = '\0';
  // The command name (field 2) is in parentheses and may contain spaces or ')': skip to the
  // last ')'. Field 3 (state) follows; starttime is field 22.
  char* p = std::strrchr(buf, ')');
  if (!p || p[1] != ' ') return out;
  out.state = p[2];
  int field = 2;
  for (++p; *p && field < 22; ++p)
    if (*p == ' ') ++field;
  out.start_time = std::strtoull(p, nullptr, 10);
  return out;
}

}  // namespace

std::uint64_t process_start_time(pid_t pid) { return read_proc_stat(pid).start_time; }

bool process_alive(pid_t pid, std::uint64_t start_time) {
  ProcStat st = read_proc_stat(pid);
  // A zombie (Z) or dying (X) process will never finish a write: dead. Stopped (T, t),
  // sleeping or running processes are alive.
  return st.start_time != 0 && st.start_time == start_time && st.state != 'Z' && st.state != 'X';
}

std::uint64_t self_start_time() {
  // Cached per pid: a fork()ed child is another process with another start time.
  static thread_local pid_t cached_pid = 0;
  static thread_local std::uint64_t cached = 0;
  pid_t pid = getpid();
  if (pid != cached_pid) {
    cached = process_start_time(pid);
    cached_pid = pid;
  }
  return cached;
}

}  // namespace evring::shm
