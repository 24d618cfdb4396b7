// Bash completion (tools/completion/evring.bash) run in bash against the built evring, and kept
// in sync with `evring --help` / `evring VERB --help`; every flag in the help has a description.
#include <cstdio>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "cli_fixture.h"

namespace evring_cli_test {
namespace {

const std::string kScript = std::string(EVRING_SOURCE_DIR) + "/tools/completion/evring.bash";

std::string shell_quote(const std::string& word) {
  std::string out = "'";
  for (char c : word) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

struct Shell {
  int code = -1;
  std::string out;
};

Shell run_shell(const std::string& script) {
  Shell s;
  const std::string command = "bash --norc --noprofile -c " + shell_quote(script) + " 2>&1";
  if (FILE* f = popen(command.c_str(), "r")) {
    char buf[4096];
    for (std::size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) s.out.append(buf, n);
    const int status = pclose(f);
    s.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  return s;
}

// COMPREPLY for the command line `words`, the last word being completed. words[0] is the
// program: the built evring unless given.
std::vector<std::string> complete(std::vector<std::string> words,
                                  const std::string& program = EVRING_BINARY) {
  words.insert(words.begin(), program);
  std::string script = "source " + shell_quote(kScript) + " || exit 90; COMP_WORDS=(";
  for (const auto& w : words) script += shell_quote(w) + " ";
  script += "); COMP_CWORD=" + std::to_string(words.size() - 1) +
            "; _evring || exit 91; for w in \"${COMPREPLY[@]}\"; do printf '%s\\n' \"$w\"; done";
  Shell s = run_shell(script);
  EXPECT_EQ(s.code, 0) << s.out;
  std::vector<std::string> out;
  std::size_t at = 0;
  while (at < s.out.size()) {
    const std::size_t nl = s.out.find('\n', at);
    out.push_back(s.out.substr(at, nl - at));
    if (nl == std::string::npos) break;
    at = nl + 1;
  }
  return out;
}

std::set<std::string> as_set(const std::vector<std::string>& v) { return {v.begin(), v.end()}; }

// ---- `--help` parsing (CLI11's layout: names, padded to column 30, then the description; a
// longer names part puts the description on the next line, indented to column 30) ----

constexpr std::size_t kDescriptionColumn = 30;

struct HelpEntry {
  std::string name;         // first name: "--format", "-h,--help" gives "--help"; "BUS"
  std::string description;  // empty when the help gives none
};

struct Help {
  std::vector<HelpEntry> options, positionals, subcommands;
};

std::vector<std::string> text_lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string trim(std::string s) {
  s.erase(0, s.find_first_not_of(' '));
  s.erase(s.find_last_not_of(' ') + 1);
  return s;
}

Help parse_help(const std::string& text) {
  Help help;
  const std::vector<std::string> lines = text_lines(text);
  std::vector<HelpEntry>* section = nullptr;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    if (line == "Options:") section = &help.options;
    else if (line == "Positionals:") section = &help.positionals;
    else if (line == "Subcommands:") section = &help.subcommands;
    else if (line.empty() || line[0] != ' ') section = nullptr;
    if (!section || line.size() < 3 || line[0] != ' ' || line[1] != ' ' || line[2] == ' ')
      continue;
    HelpEntry e;
    std::string names = line.substr(2, line.find(' ', 2) - 2);
    // "-h,--help": the long name.
    if (const std::size_t comma = names.rfind(','); comma != std::string::npos)
      names = names.substr(comma + 1);
    e.name = names;
    const std::string next = i + 1 < lines.size() ? lines[i + 1] : "";
    if (next.size() > kDescriptionColumn &&
        next.find_first_not_of(' ') == kDescriptionColumn) {
      e.description = trim(next.substr(kDescriptionColumn));  // names overflowed the column
      ++i;
    } else if (line.size() > kDescriptionColumn && line[kDescriptionColumn - 1] == ' ') {
      e.description = trim(line.substr(kDescriptionColumn));
    }
    section->push_back(e);
  }
  return help;
}

class CompletionTest : public CliTest {
 protected:
  Help help_of(const std::vector<std::string>& words) {
    std::vector<std::string> args = words;
    args.push_back("--help");
    Output o = run(args);
    EXPECT_EQ(o.code, 0) << o.err;
    return parse_help(o.out);
  }
};
using completion = CompletionTest;  // lowercase suite: `ctest -R completion`

TEST_F(completion, VerbsAndTheirFlags) {
  std::set<std::string> verbs = as_set(complete({""}));
  for (const char* v : {"create", "ls", "rm", "stat", "publish", "tail", "inspect", "top",
                        "bench", "exporter", "--help", "--version"})
    EXPECT_TRUE(verbs.count(v)) << v;
  EXPECT_EQ(as_set(complete({"ta"})), (std::set<std::string>{"tail"}));
  EXPECT_EQ(as_set(complete({"tail", "--fo"})), (std::set<std::string>{"--format"}));
  EXPECT_EQ(as_set(complete({"stat", "bus", "--"})), (std::set<std::string>{"--help", "--json"}));
  EXPECT_EQ(as_set(complete({"inspect", "--"})),
            (std::set<std::string>{"--help", "--partition", "--seq", "--last", "--json",
                                   "--format"}));
  EXPECT_EQ(as_set(complete({"bench", ""})),
            (std::set<std::string>{"throughput", "latency", "peers", "--help"}));
  std::set<std::string> latency = as_set(complete({"bench", "latency", "--"}));
  for (const char* f : {"--payload", "--seconds", "--json", "--rate", "--wait", "--hgrm", "--cpus"})
    EXPECT_TRUE(latency.count(f)) << f;
  EXPECT_FALSE(latency.count("--producers")) << "a throughput flag";
  std::set<std::string> throughput = as_set(complete({"bench", "throughput", "--"}));
  for (const char* f : {"--payload", "--partitions", "--producers", "--consumers", "--seconds",
                        "--batch", "--dedup", "--json", "--cpus"})
    EXPECT_TRUE(throughput.count(f)) << f;
}

TEST_F(completion, FlagValuesFromTheirFixedSets) {
  EXPECT_EQ(complete({"tail", "bus", "--format", ""}),
            (std::vector<std::string>{"json", "table", "cloudevents"}));
  EXPECT_EQ(complete({"inspect", "bus", "--format", "c"}),
            (std::vector<std::string>{"cloudevents"}));
  EXPECT_EQ(complete({"create", "bus", "--overflow", ""}),
            (std::vector<std::string>{"reject", "overwrite"}));
  EXPECT_EQ(complete({"tail", "bus", "--from", ""}),
            (std::vector<std::string>{"earliest", "latest", "committed"}));
  EXPECT_EQ(complete({"tail", "--wait", "y"}), (std::vector<std::string>{"yield"}));
  EXPECT_EQ(complete({"bench", "latency", "--wait", ""}),
            (std::vector<std::string>{"spin", "yield", "block"}));
  EXPECT_EQ(complete({"publish", "bus", "--classification", "con"}),
            (std::vector<std::string>{"confidential"}));
  // --flag=value, whether or not COMP_WORDBREAKS split it at '='.
  EXPECT_EQ(complete({"tail", "--format=ta"}), (std::vector<std::string>{"--format=table"}));
  EXPECT_EQ(complete({"tail", "--format", "=", "cl"}), (std::vector<std::string>{"cloudevents"}));
  // A free-text value: nothing is offered (in particular no flags).
  EXPECT_TRUE(complete({"tail", "bus", "--count", ""}).empty());
  EXPECT_TRUE(complete({"exporter", "bus", "--listen", ""}).empty());
  // File names for --data-file.
  EXPECT_EQ(complete({"publish", "bus", "--data-file", kScript.substr(0, kScript.size() - 2)}),
            (std::vector<std::string>{kScript}));
  // A file name with a blank stays one completion.
  const std::string spaced = path("event data.json");
  std::ofstream(spaced) << "{}";
  EXPECT_EQ(complete({"publish", "bus", "--data-file", path("event d")}),
            (std::vector<std::string>{spaced}));
}

TEST_F(completion, BusNamesFromLs) {
  create({"--partitions", "1", "--slots", "16"});
  const std::string prefix = bus_.substr(0, bus_.size() - 2);
  EXPECT_TRUE(as_set(complete({"tail", prefix})).count(bus_));
  EXPECT_TRUE(as_set(complete({"inspect", "--format", "json", prefix})).count(bus_))
      << "a flag's value is not the BUS";
  EXPECT_TRUE(as_set(complete({"exporter", bus_, prefix})).count(bus_)) << "exporter takes buses";
  EXPECT_TRUE(complete({"tail", bus_, prefix}).empty()) << "tail takes one BUS";
  EXPECT_TRUE(complete({"create", prefix}).empty()) << "create names a new bus";
  // An evring that cannot run gives no names and no noise.
  EXPECT_TRUE(complete({"stat", prefix}, "/nonexistent/evring").empty());
}

// The flags and verbs of the help and of the completion script are the same: verbs are found
// in `evring --help` (a verb added by someone else is checked as soon as the binary has it).
TEST_F(completion, ScriptMatchesTheHelpOfEveryVerb) {
  const Help top = help_of({});
  ASSERT_GE(top.subcommands.size(), 5u);
  const std::set<std::string> verbs = as_set(complete({""}));
  std::set<std::string> top_flags;
  for (const HelpEntry& o : top.options) top_flags.insert(o.name);
  for (const auto& f : top_flags) EXPECT_TRUE(verbs.count(f)) << f;

  // (words naming a verb or bench mode) -> check its flags both ways, recurse into modes.
  std::vector<std::vector<std::string>> todo;
  for (const HelpEntry& v : top.subcommands) {
    EXPECT_TRUE(verbs.count(v.name)) << "verb " << v.name << " is not completed";
    todo.push_back({v.name});
  }
  std::size_t checked = 0;
  while (!todo.empty()) {
    const std::vector<std::string> words = todo.back();
    todo.pop_back();
    SCOPED_TRACE("evring " + words[0] + (words.size() > 1 ? " " + words[1] : ""));
    const Help help = help_of(words);
    std::vector<std::string> line = words;
    line.push_back("--");
    const std::set<std::string> completed = as_set(complete(line));
    std::set<std::string> listed;
    for (const HelpEntry& o : help.options) listed.insert(o.name);
    for (const auto& f : listed) EXPECT_TRUE(completed.count(f)) << f << " is not completed";
    for (const auto& f : completed) EXPECT_TRUE(listed.count(f)) << f << " is not in --help";
    ++checked;
    if (help.subcommands.empty()) continue;
    std::vector<std::string> modes_line = words;
    modes_line.push_back("");
    const std::set<std::string> modes = as_set(complete(modes_line));
    for (const HelpEntry& m : help.subcommands) {
      EXPECT_TRUE(modes.count(m.name)) << m.name << " is not completed";
      std::vector<std::string> sub = words;
      sub.push_back(m.name);
      todo.push_back(sub);
    }
  }
  EXPECT_GE(checked, top.subcommands.size());
}

TEST_F(completion, HelpDescribesEveryFlagAndVerb) {
  const Help top = help_of({});
  std::vector<std::vector<std::string>> todo;
  for (const HelpEntry& v : top.subcommands) {
    EXPECT_FALSE(v.description.empty()) << "verb " << v.name;
    todo.push_back({v.name});
  }
  std::size_t entries = 0;
  while (!todo.empty()) {
    const std::vector<std::string> words = todo.back();
    todo.pop_back();
    const Help help = help_of(words);
    const std::string where = words[0] + (words.size() > 1 ? " " + words[1] : "");
    for (const auto* list : {&help.options, &help.positionals, &help.subcommands})
      for (const HelpEntry& e : *list) {
        EXPECT_FALSE(e.description.empty()) << "evring " << where << ": " << e.name;
        ++entries;
      }
    for (const HelpEntry& m : help.subcommands) {
      std::vector<std::string> sub = words;
      sub.push_back(m.name);
      todo.push_back(sub);
    }
  }
  EXPECT_GT(entries, 40u);
}

// The parser itself, on CLI11's two layouts, so that a help with a missing description fails.
TEST(completion_help_parser, ReadsBothLayoutsAndSeesMissingDescriptions) {
  const Help h = parse_help(
      "Options:\n"
      "  -h,--help                   Print this help message and exit\n"
      "  --overflow reject|overwrite=reject\n"
      "                              reject (lossless) or overwrite\n"
      "  --bare\n"
      "  --count N                   \n"
      "\n"
      "Subcommands:\n"
      "  tail                        Follow a bus\n");
  ASSERT_EQ(h.options.size(), 4u);
  EXPECT_EQ(h.options[0].name, "--help");
  EXPECT_EQ(h.options[0].description, "Print this help message and exit");
  EXPECT_EQ(h.options[1].name, "--overflow");
  EXPECT_EQ(h.options[1].description, "reject (lossless) or overwrite");
  EXPECT_EQ(h.options[2].name, "--bare");
  EXPECT_EQ(h.options[2].description, "");
  EXPECT_EQ(h.options[3].name, "--count");
  EXPECT_EQ(h.options[3].description, "");
  ASSERT_EQ(h.subcommands.size(), 1u);
  EXPECT_EQ(h.subcommands[0].name, "tail");
}

}  // namespace
}  // namespace evring_cli_test
