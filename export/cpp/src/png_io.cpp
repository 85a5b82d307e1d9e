#include "png_io.hpp"

#include <png.h>

#include <cstdio>
#include <memory>
#include <stdexcept>

namespace edgesr {

namespace {
struct FileCloser {
    void operator()(std::FILE* f) const {
        if (f) std::fclose(f);
    }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

[[noreturn]] void png_fail(png_structp, png_const_charp message) { throw std::runtime_error(message); }
void png_warn(png_structp, png_const_charp) {}
}  // namespace

ImageRGB8 read_png_rgb8(const std::string& path) {
    File file(std::fopen(path.c_str(), "rb"));
    if (!file) throw std::runtime_error("cannot open " + path);
    png_byte header[8];
    if (std::fread(header, 1, 8, file.get()) != 8 || png_sig_cmp(header, 0, 8))
        throw std::runtime_error(path + " is not a PNG file");
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, png_fail, png_warn);
    png_infop info = png ? png_create_info_struct(png) : nullptr;
    if (!png || !info) throw std::runtime_error("libpng: out of memory");
    ImageRGB8 image;
    try {
        png_init_io(png, file.get());
        png_set_sig_bytes(png, 8);
        png_read_info(png, info);
        png_byte color = png_get_color_type(png, info);
        if (png_get_bit_depth(png, info) == 16) png_set_strip_16(png);
        if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
        if (color == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8) png_set_expand_gray_1_2_4_to_8(png);
        if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
        if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
        if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
        png_read_update_info(png, info);
        image.width = static_cast<int>(png_get_image_width(png, info));
        image.height = static_cast<int>(png_get_image_height(png, info));
        if (png_get_rowbytes(png, info) != static_cast<png_size_t>(image.width) * 3)
            throw std::runtime_error("unexpected PNG layout after conversion to RGB8");
        image.pixels.resize(static_cast<std::size_t>(image.width) * image.height * 3);
        std::vector<png_bytep> rows(image.height);
        for (int y = 0; y < image.height; ++y) rows[y] = image.pixels.data() + static_cast<std::size_t>(y) * image.width * 3;
        png_read_image(png, rows.data());
        png_read_end(png, nullptr);
    } catch (...) {
        png_destroy_read_struct(&png, &info, nullptr);
        throw;
    }
    png_destroy_read_struct(&png, &info, nullptr);
    return image;
}

void write_png_rgb8(const std::string& path, const ImageRGB8& image) {
    if (image.width <= 0 || image.height <= 0 ||
        image.pixels.size() != static_cast<std::size_t>(image.width) * image.height * 3)
        throw std::runtime_error("write_png_rgb8: bad image size");
    std::string tmp = path + ".tmp";
    {
        File file(std::fopen(tmp.c_str(), "wb"));
        if (!file) throw std::runtime_error("cannot write " + tmp);
        png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, png_fail, png_warn);
        png_infop info = png ? png_create_info_struct(png) : nullptr;
        if (!png || !info) throw std::runtime_error("libpng: out of memory");
        try {
            png_init_io(png, file.get());
            png_set_IHDR(png, info, image.width, image.height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                         PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
            png_write_info(png, info);
            for (int y = 0; y < image.height; ++y)
                png_write_row(png, const_cast<png_bytep>(image.pixels.data() + static_cast<std::size_t>(y) * image.width * 3));
            png_write_end(png, nullptr);
        } catch (...) {
            png_destroy_write_struct(&png, &info);
            std::remove(tmp.c_str());
            throw;
        }
        png_destroy_write_struct(&png, &info);
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {  // written completely, then moved into place
        std::remove(tmp.c_str());
        throw std::runtime_error("cannot move " + tmp + " to " + path);
    }
}

}  // namespace edgesr
