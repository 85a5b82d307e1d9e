// 8-bit RGB PNG reading/writing with libpng (find_package(PNG)).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace edgesr {

struct ImageRGB8 {
    int width = 0;
    int height = 0;
    std::vector<std::uint8_t> pixels;  // row-major, interleaved RGB, height * width * 3 bytes
};

// Any PNG (gray, palette, 16-bit, alpha) is converted to 8-bit RGB; alpha is dropped. Throws std::runtime_error.
ImageRGB8 read_png_rgb8(const std::string& path);
void write_png_rgb8(const std::string& path, const ImageRGB8& image);

}  // namespace edgesr
