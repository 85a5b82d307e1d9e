// JNI bridge between Upscaler.kt (class org.edgesr.example.NcnnBridge) and ncnn.
//
// One tile per call: float32 CHW in (already in the model's value range, e.g. 0..1), float32 CHW out.
// The Option fields come from the sidecar's "ncnn.opt" block: FP32 artifacts must turn FP16 storage and
// arithmetic off, because ncnn enables both by default on ARMv8.2 CPUs.
#include <jni.h>

#include <cstring>
#include <string>

#include <android/log.h>

#include "net.h"

namespace {

struct Model {
    ncnn::Net net;
    std::string input_blob;
    std::string output_blob;
};

std::string to_string(JNIEnv* env, jstring s) {
    const char* chars = env->GetStringUTFChars(s, nullptr);
    std::string out(chars);
    env->ReleaseStringUTFChars(s, chars);
    return out;
}

}  // namespace

extern "C" JNIEXPORT jlong JNICALL Java_org_edgesr_example_NcnnBridge_load(
    JNIEnv* env, jclass, jstring param, jstring bin, jstring input_blob, jstring output_blob, jint threads,
    jboolean fp16_storage, jboolean fp16_arithmetic, jboolean vulkan) {
    auto* model = new Model();
    ncnn::Option& opt = model->net.opt;
    opt.num_threads = threads;
    opt.use_fp16_storage = fp16_storage;
    opt.use_fp16_packed = fp16_storage;
    opt.use_fp16_arithmetic = fp16_storage && fp16_arithmetic;
    opt.use_bf16_storage = false;
    opt.use_vulkan_compute = vulkan && ncnn::get_gpu_count() > 0;
    if (model->net.load_param(to_string(env, param).c_str()) != 0 ||
        model->net.load_model(to_string(env, bin).c_str()) != 0) {
        __android_log_print(ANDROID_LOG_ERROR, "edgesr", "ncnn cannot load the model files");
        delete model;
        return 0;
    }
    model->input_blob = to_string(env, input_blob);
    model->output_blob = to_string(env, output_blob);
    return reinterpret_cast<jlong>(model);
}

// Returns [C * H_out * W_out] floats followed by H_out and W_out (as floats), or null on failure.
extern "C" JNIEXPORT jfloatArray JNICALL Java_org_edgesr_example_NcnnBridge_run(
    JNIEnv* env, jclass, jlong handle, jfloatArray chw, jint height, jint width) {
    auto* model = reinterpret_cast<Model*>(handle);
    if (model == nullptr) return nullptr;
    ncnn::Mat in(width, height, 3);
    jfloat* src = env->GetFloatArrayElements(chw, nullptr);
    const size_t plane = static_cast<size_t>(width) * height;
    for (int c = 0; c < 3; ++c) {  // each ncnn channel is contiguous H*W floats (channels are cstep apart)
        std::memcpy(in.channel(c), src + c * plane, plane * sizeof(float));
    }
    env->ReleaseFloatArrayElements(chw, src, JNI_ABORT);

    ncnn::Extractor ex = model->net.create_extractor();
    ncnn::Mat out;
    if (ex.input(model->input_blob.c_str(), in) != 0 || ex.extract(model->output_blob.c_str(), out) != 0) {
        return nullptr;
    }
    if (out.elemsize != sizeof(float)) {  // FP16 storage: convert the output back to float32
        ncnn::Mat out32;
        ncnn::cast_float16_to_float32(out, out32, model->net.opt);
        out = out32;
    }
    const size_t out_plane = static_cast<size_t>(out.w) * out.h;
    jfloatArray result = env->NewFloatArray(static_cast<jsize>(out.c * out_plane + 2));
    for (int c = 0; c < out.c; ++c) {
        env->SetFloatArrayRegion(result, static_cast<jsize>(c * out_plane), static_cast<jsize>(out_plane),
                                 static_cast<const float*>(out.channel(c)));
    }
    const float dims[2] = {static_cast<float>(out.h), static_cast<float>(out.w)};
    env->SetFloatArrayRegion(result, static_cast<jsize>(out.c * out_plane), 2, dims);
    return result;
}

extern "C" JNIEXPORT void JNICALL Java_org_edgesr_example_NcnnBridge_free(JNIEnv*, jclass, jlong handle) {
    delete reinterpret_cast<Model*>(handle);
}
