from .clip import CLIPTextTransformer, CLIPTokenizer, ContrastiveCLIP, zero_shot_prompts
from .clip_convert import convert_open_clip, convert_open_clip_text, is_open_clip, text_state_dict

__all__ = [
    'CLIPTextTransformer', 'CLIPTokenizer', 'ContrastiveCLIP', 'zero_shot_prompts',
    'convert_open_clip', 'convert_open_clip_text', 'is_open_clip', 'text_state_dict'
]
