// C++ containers: vectors that grow, maps and strings that churn.
// usage: bench_cxx [ROUNDS]   (default 200)
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "bench_common.h"

int main(int argc, char **argv)
{
    long rounds = bench_arg(argc, argv, 1, 200);
    size_t total = 0;
    for (long r = 0; r < rounds; r++) {
        std::vector<int> v;
        for (int i = 0; i < 20000; i++)
            v.push_back(i);
        std::map<int, std::string> m;
        for (int i = 0; i < 2000; i++)
            m[i] = std::string(40 + i % 17, 'x');
        std::vector<std::string> words;
        for (int i = 0; i < 2000; i++)
            words.emplace_back(std::to_string(i) + " is a number long enough to allocate");
        total += v.size() + m.size() + words.size();
    }
    bench_report_rss();
    return total == 0;
}
