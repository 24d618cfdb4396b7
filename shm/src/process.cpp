#include "evring/shm/process.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace evring::shm {

std::uint64_t process_start_time(pid_t pid) {
  if (pid <= 0) return 0;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[1024];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  // The command name (field 2) is in parentheses and may contain spaces or ')': skip to the
  // last ')'. Field 3 (state) follows; starttime is field 22.
  char* p = std::strrchr(buf, ')');
  if (!p) return 0;
  int field = 2;
  for (++p; *p && field < 22; ++p)
    if (*p == ' ') ++field;
  return std::strtoull(p, nullptr, 10);
}

bool process_alive(pid_t pid, std::uint64_t start_time) {
  std::uint64_t now = process_start_time(pid);
  return now != 0 && now == start_time;
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
