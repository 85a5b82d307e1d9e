// edgesr_validate_sidecar SCHEMA SIDECAR...: validate sidecar files against edgesr's published JSON Schema
// (edgesr/artifacts/sidecar.schema.json, installed with the Python package: `python -c "import edgesr.artifacts as
// a; print(a.schema_path())"`). Prints one line per problem; exit status 0 when every file is valid, 1 otherwise,
// 2 for unreadable files.
#include <iostream>
#include <stdexcept>
#include <string>

#include "schema.hpp"

int main(int argc, char** argv) {
    if (argc < 3) {
        std::cerr << "usage: " << argv[0] << " SCHEMA SIDECAR...\n";
        return 2;
    }
    int status = 0;
    for (int i = 2; i < argc; ++i) {
        try {
            auto problems = edgesr::validate_file_against_schema(argv[1], argv[i]);
            if (problems.empty()) {
                std::cout << argv[i] << ": valid\n";
                continue;
            }
            status = 1;
            for (const auto& p : problems) std::cout << argv[i] << ": invalid: " << p << "\n";
        } catch (const std::exception& e) {
            std::cerr << "error: " << e.what() << "\n";
            return 2;
        }
    }
    return status;
}
